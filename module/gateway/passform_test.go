package gateway

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

// memS3 is an S3 that keeps small objects in memory: enough for single
// PutObject uploads and deletes.
type memS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
}

func (m *memS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.objects == nil {
		m.objects = map[string][]byte{}
	}
	m.objects[aws.ToString(in.Key)] = b
	return &s3.PutObjectOutput{ETag: aws.String(`"e"`)}, nil
}

func (m *memS3) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, aws.ToString(in.Key))
	return &s3.DeleteObjectOutput{}, nil
}

var errNoMultipart = errors.New("memS3: multipart uploads are not supported")

func (*memS3) CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	return nil, errNoMultipart
}
func (*memS3) UploadPart(context.Context, *s3.UploadPartInput, ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	return nil, errNoMultipart
}
func (*memS3) CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	return nil, errNoMultipart
}
func (*memS3) AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	return nil, errNoMultipart
}
func (*memS3) PutObjectTagging(context.Context, *s3.PutObjectTaggingInput, ...func(*s3.Options)) (*s3.PutObjectTaggingOutput, error) {
	return &s3.PutObjectTaggingOutput{}, nil
}
func (*memS3) HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	return &s3.HeadObjectOutput{}, nil
}

// passGateway is a provisioned pass-mode gateway over an in-memory S3,
// changed by mutate before it is provisioned.
func passGateway(t *testing.T, mutate func(*Gateway)) (*Gateway, *memS3) {
	t.Helper()
	g := &Gateway{S3Config: shared.S3Config{Bucket: "b", KMSKeyID: "k"}, Output: OutputPass, AllowAnonymous: true, DisableTags: true}
	mutate(g)
	g.ApplyDefaults()
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := g.provisionPassForm(); err != nil {
		t.Fatal(err)
	}
	allow, err := contenttype.NewAllowlist(nil)
	if err != nil {
		t.Fatal(err)
	}
	g.allowlist = allow
	g.logger = zap.NewNop()
	s3 := &memS3{}
	g.uploader = s3stream.New(s3, s3stream.Options{PartSize: g.PartSize, Concurrency: g.Concurrency})
	return g, s3
}

// passForm stores a form through g and returns the rewritten form's parts
// as "name=value", in order.
func passForm(t *testing.T, g *Gateway, body string) ([]string, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/up", strings.NewReader(body))
	r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	q := &request{g: g, r: r, repl: caddy.NewReplacer()}
	if err := q.store(); err != nil {
		return nil, err
	}
	_, params, err := mime.ParseMediaType(q.formType)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	mr := multipart.NewReader(bytes.NewReader(q.form.Bytes()), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		v, _ := io.ReadAll(p)
		got = append(got, p.FormName()+"="+string(v))
	}
}

func part(name, filename, value string) string {
	if filename == "" {
		return fmt.Sprintf("--b\r\nContent-Disposition: form-data; name=%q\r\n\r\n%s\r\n", name, value)
	}
	return fmt.Sprintf("--b\r\nContent-Disposition: form-data; name=%q; filename=%q\r\nContent-Type: text/plain\r\n\r\n%s\r\n", name, filename, value)
}

// keyless drops the values that change per run (keys) from parts.
func keyless(parts []string) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		if name, _, ok := strings.Cut(p, "="); ok && (strings.HasSuffix(name, "key]") || strings.HasSuffix(name, ".key") || strings.HasSuffix(name, "[path]")) {
			p = name + "=…"
		}
		out[i] = p
	}
	return out
}

func TestPassFieldNames(t *testing.T) {
	sum := md5.Sum([]byte("bravo"))
	md5b := hex.EncodeToString(sum[:])
	crcb := fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte("bravo")))
	keyOnly := []PassField{{Name: "{upload.field}.name", Value: "{upload.name}"}, {Name: "{upload.field}.key", Value: "{upload.key}"}}
	tests := []struct {
		name    string
		mutate  func(*Gateway)
		body    string
		want    []string
		wantErr error
	}{
		{
			name:   "dotted: plain names dotted, arrays nested and numbered per field",
			mutate: func(g *Gateway) { g.PassFields = keyOnly },
			body: part("title", "", "t") + part("docs[]", "a.txt", "alpha") + part("avatar", "me.txt", "x") +
				part("docs[]", "b.txt", "bravo") + part("pics[]", "p.txt", "p") + "--b--\r\n",
			want: []string{"title=t", "docs[0][name]=a.txt", "docs[0][key]=…", "avatar.name=me.txt", "avatar.key=…",
				"docs[1][name]=b.txt", "docs[1][key]=…", "pics[0][name]=p.txt", "pics[0][key]=…"},
		},
		{
			name:   "nested style",
			mutate: func(g *Gateway) { g.PassFields = keyOnly; g.PassFieldStyle = "nested" },
			body:   part("first_name", "", "Ada") + part("avatar", "me.txt", "x") + "--b--\r\n",
			want:   []string{"first_name=Ada", "avatar[name]=me.txt", "avatar[key]=…"},
		},
		{
			name: "digests and index in custom templates",
			mutate: func(g *Gateway) {
				g.PassFields = []PassField{
					{Name: "{upload.field_base}[{upload.index}][path]", Value: "{upload.key}"},
					{Name: "{upload.field_base}[{upload.index}][md5]", Value: "{upload.md5}"},
					{Name: "{upload.field_base}[{upload.index}][crc32]", Value: "{upload.crc32}"},
				}
			},
			body: part("f[]", "a.txt", "alpha") + part("f[]", "b.txt", "bravo") + "--b--\r\n",
			want: []string{"f[0][path]=…", "f[0][md5]=2c1743a391305fbf367df8e4f069f9f9", "f[0][crc32]=" + fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte("alpha"))),
				"f[1][path]=…", "f[1][md5]=" + md5b, "f[1][crc32]=" + crcb},
		},
		{
			name:   "a digest inside a value template",
			mutate: func(g *Gateway) { g.PassFields = []PassField{{Name: "{upload.field}.md5", Value: "<{upload.md5}>"}} },
			body:   part("f", "a.txt", "alpha") + "--b--\r\n",
			want:   []string{"f.md5=<2c1743a391305fbf367df8e4f069f9f9>"},
		},
		{
			name:   "pass_form_fields drops unselected fields instead of refusing them",
			mutate: func(g *Gateway) { g.PassFields = keyOnly; g.PassFormFields = []string{"^title$", `^tags\[`} },
			body:   part("title", "", "t") + part("secret", "", "s") + part("api_key", "", "k") + part("tags[]", "", "x") + part("f", "a.txt", "alpha") + "--b--\r\n",
			want:   []string{"title=t", "tags[]=x", "f.name=a.txt", "f.key=…"},
		},
		{
			name:    "a client's entry in an array of files is refused",
			mutate:  func(g *Gateway) { g.PassFields = keyOnly },
			body:    part("docs[5][key]", "", "victim") + part("docs[]", "a.txt", "alpha") + "--b--\r\n",
			wantErr: errReservedField,
		},
		{
			name:    "dotted style still refuses api_key",
			mutate:  func(g *Gateway) { g.PassFields = keyOnly },
			body:    part("api_key", "", "k") + "--b--\r\n",
			wantErr: errReservedField,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, _ := passGateway(t, tt.mutate)
			got, err := passForm(t, g, tt.body)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("store() = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("store() = %v", err)
			}
			if got = keyless(got); !slices.Equal(got, tt.want) {
				t.Errorf("rewritten form:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// A gateway whose templates do not use the digests computes none.
func TestPassDigestsOnlyWhenUsed(t *testing.T) {
	g, _ := passGateway(t, func(*Gateway) {})
	if g.passMD5 || g.passCRC32 {
		t.Errorf("default pass fields compute md5=%v crc32=%v, want neither", g.passMD5, g.passCRC32)
	}
	g, _ = passGateway(t, func(g *Gateway) { g.PassFields = []PassField{{Name: "x", Value: "{upload.crc32}"}} })
	if g.passMD5 || !g.passCRC32 {
		t.Errorf("crc32 template computes md5=%v crc32=%v, want crc32 only", g.passMD5, g.passCRC32)
	}
}
