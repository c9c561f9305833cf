//go:build integration

package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	var err error
	env, err = harness.LoadEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration tests need the real test servers:", err)
		os.Exit(1)
	}
	if _, err := harness.BuildGateway(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		harness.RemoveBuild()
		os.Exit(1)
	}
	code := m.Run()
	harness.RemoveBuild()
	os.Exit(code)
}

// gatewayOpts describes one upload_gateway block.
type gatewayOpts struct {
	prefix   string
	endpoint string   // default: the test S3 server
	lines    []string // extra subdirectives
	// auth leaves out allow_anonymous: requests need an identity from
	// upload_auth. Without it the block accepts anonymous uploads, as
	// most tests send them.
	auth bool
}

func (o gatewayOpts) block() string {
	lines := o.lines
	if !o.auth {
		lines = append([]string{"allow_anonymous"}, lines...)
	}
	return fmt.Sprintf(`upload_gateway {
		%s
		prefix %s
		%s
	}`, harness.S3Settings(o.endpoint), o.prefix, strings.Join(lines, "\n\t\t"))
}

// testPrefix returns a key prefix unique to this test run, and removes
// whatever is left under it when the test ends.
func testPrefix(t *testing.T) string {
	t.Helper()
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	p := fmt.Sprintf("it/%s-%d/", name, rand.Uint32())
	t.Cleanup(func() { env.DeletePrefix(context.Background(), p) })
	return p
}

// startGateway starts a gateway serving site and stops it when the test ends.
func startGateway(t *testing.T, site string) *harness.Gateway {
	t.Helper()
	return startGatewayWith(t, harness.GatewayConfig{Site: site})
}

// startGatewayWith starts a gateway with a whole configuration (global
// options, environment) and stops it when the test ends.
func startGatewayWith(t *testing.T, cfg harness.GatewayConfig) *harness.Gateway {
	t.Helper()
	gw, err := env.StartGateway(cfg)
	if err != nil {
		t.Fatalf("starting the gateway: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway logs:\n%s", gw.Logs())
		}
		gw.Stop()
	})
	return gw
}

// assertNothingLeft waits until no multipart upload and no object remains
// under prefix (aborts may finish just after the response).
func assertNothingLeft(t *testing.T, prefix string) {
	t.Helper()
	var uploads, objects []string
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		uploads, objects, err = env.Leftovers(context.Background(), prefix)
		if err == nil && len(uploads) == 0 && len(objects) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listing leftovers: %v", err)
	}
	t.Errorf("left behind under %s: %d multipart uploads %v, %d objects %v", prefix, len(uploads), uploads, len(objects), objects)
}

// formPart is one part of a test form.
type formPart struct {
	field, fileName, contentType string
	body                         io.Reader // nil for a plain field
	value                        string
}

// buildForm writes a multipart form into memory.
func buildForm(t *testing.T, parts []formPart) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		if p.body == nil {
			if err := mw.WriteField(p.field, p.value); err != nil {
				t.Fatal(err)
			}
			continue
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.field, p.fileName))
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, p.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

// apiResponse is the gateway's JSON envelope.
type apiResponse struct {
	Success bool `json:"success"`
	Data    struct {
		Files []struct {
			Field       string `json:"field"`
			FileName    string `json:"fileName"`
			S3Key       string `json:"s3Key"`
			Bucket      string `json:"bucket"`
			Size        int64  `json:"size"`
			ContentType string `json:"contentType"`
			ETag        string `json:"etag"`
			SHA256      string `json:"sha256"`
			// Checksum is the object's full-object CRC32C (by default).
			Checksum          string `json:"checksum"`
			ChecksumAlgorithm string `json:"checksumAlgorithm"`
		} `json:"files"`
	} `json:"data"`
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeResponse(t *testing.T, resp *http.Response) apiResponse {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("response %d is not JSON: %v: %q", resp.StatusCode, err, body)
	}
	return r
}

// objectSHA256 downloads an object and hashes it.
func objectSHA256(t *testing.T, key string) (string, int64) {
	t.Helper()
	out, err := env.S3().GetObject(context.Background(), &s3.GetObjectInput{Bucket: &env.Bucket, Key: &key})
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer out.Body.Close()
	sum, n, err := harness.SHA256Of(out.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return sum, n
}

// assertChecksum checks with HeadObject (checksum mode enabled) that S3
// stores key with the full-object CRC32C want (a multipart object's
// composite value would end in "-<parts>"). SeaweedFS leaves ChecksumType
// out for single PutObjects, where it can only be FULL_OBJECT.
func assertChecksum(t *testing.T, key, want string) {
	t.Helper()
	head, err := env.S3().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &env.Bucket, Key: &key, ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatalf("HeadObject %s: %v", key, err)
	}
	if got := aws.ToString(head.ChecksumCRC32C); got != want || head.ChecksumType != types.ChecksumTypeFullObject && head.ChecksumType != "" {
		t.Errorf("object %s: S3 stores checksum CRC32C %q type %q, want %q FULL_OBJECT", key, got, head.ChecksumType, want)
	}
}

// assertEncrypted checks with HeadObject that key is stored with SSE-KMS
// under the test key.
func assertEncrypted(t *testing.T, key string) *s3.HeadObjectOutput {
	t.Helper()
	head, err := env.S3().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &env.Bucket, Key: &key})
	if err != nil {
		t.Fatalf("HeadObject %s: %v", key, err)
	}
	if head.ServerSideEncryption != "aws:kms" {
		t.Errorf("%s: ServerSideEncryption = %q, want aws:kms", key, head.ServerSideEncryption)
	}
	kid := aws.ToString(head.SSEKMSKeyId)
	if kid == "" || !(strings.Contains(kid, env.KMSKeyID) || (env.KMSKeyARN != "" && strings.Contains(env.KMSKeyARN, lastSegment(kid)))) {
		t.Errorf("%s: SSEKMSKeyId = %q, want the test key %s (%s)", key, kid, env.KMSKeyID, env.KMSKeyARN)
	}
	return head
}

func lastSegment(s string) string {
	if i := strings.LastIndexAny(s, "/:"); i >= 0 {
		return s[i+1:]
	}
	return s
}

// objectTags returns the tags of an object.
func objectTags(t *testing.T, key string) map[string]string {
	t.Helper()
	out, err := env.S3().GetObjectTagging(context.Background(), &s3.GetObjectTaggingInput{Bucket: &env.Bucket, Key: &key})
	if err != nil {
		t.Fatalf("GetObjectTagging %s: %v", key, err)
	}
	tags := map[string]string{}
	for _, tag := range out.TagSet {
		tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	return tags
}

// withMagic prefixes n random bytes with a file signature.
func withMagic(magic string, seed uint64, n int64) (io.Reader, *harness.RandomReader) {
	rr := harness.NewRandomReader(seed, n-int64(len(magic)))
	return io.MultiReader(strings.NewReader(magic), rr), rr
}

// fileBytes returns n deterministic bytes starting with magic.
func fileBytes(t *testing.T, magic string, seed uint64, n int64) []byte {
	t.Helper()
	r, _ := withMagic(magic, seed, n)
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	pngMagic = "\x89PNG\r\n\x1a\n"
	pdfMagic = "%PDF-1.7\n"
	elfMagic = "\x7fELF\x02\x01\x01\x00"
	mib      = 1 << 20
)
