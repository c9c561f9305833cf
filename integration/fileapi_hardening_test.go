//go:build integration

package integration_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// startAPIGateway starts a gateway serving apiSite, with extra
// environment variables (which override those of the test servers).
func startAPIGateway(t *testing.T, prefix string, environ []string, lines ...string) *harness.Gateway {
	t.Helper()
	return startGatewayWith(t, harness.GatewayConfig{Site: apiSite(prefix, lines...), Env: environ})
}

// assumedRole is one AssumeRole call the STS recorder saw.
type assumedRole struct {
	policy string
	creds  aws.Credentials
}

// stsRecorder is a reverse proxy in front of the STS server that keeps the
// session policy each AssumeRole asked for and the credentials it got.
type stsRecorder struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []assumedRole
}

func newSTSRecorder(t *testing.T) *stsRecorder {
	t.Helper()
	endpoint, _ := stsTestEnv(t)
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rec := &stsRecorder{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			return err
		}
		policy, _ := resp.Request.Context().Value(policyKey{}).(string)
		var out struct {
			Result struct {
				Credentials struct {
					AccessKeyID     string `xml:"AccessKeyId"`
					SecretAccessKey string `xml:"SecretAccessKey"`
					SessionToken    string `xml:"SessionToken"`
				} `xml:"Credentials"`
			} `xml:"AssumeRoleResult"`
		}
		if resp.StatusCode == http.StatusOK && xml.Unmarshal(body, &out) == nil && out.Result.Credentials.AccessKeyID != "" {
			c := out.Result.Credentials
			rec.mu.Lock()
			rec.calls = append(rec.calls, assumedRole{policy: policy, creds: aws.Credentials{
				AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken,
			}})
			rec.mu.Unlock()
		}
		return nil
	}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), policyKey{}, form.Get("Policy"))))
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

type policyKey struct{}

func (r *stsRecorder) sessions() []assumedRole {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]assumedRole(nil), r.calls...)
}

// auditLines returns the file API's audit lines from the gateway's logs.
func auditLines(t *testing.T, gw *harness.Gateway) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(gw.Logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["logger"] == "http.handlers.upload_api.audit" {
			lines = append(lines, line)
		}
	}
	return lines
}

// errorLogLines returns the gateway's log lines at error level.
func errorLogLines(gw *harness.Gateway) []string {
	var out []string
	for _, l := range strings.Split(gw.Logs(), "\n") {
		if strings.Contains(l, `"level":"error"`) {
			out = append(out, l)
		}
	}
	return out
}

// An operator takes downloads away from viewers and uploaders with
// `policy <role> download none`: the API refuses download URLs, and the STS
// session the gateway signs an uploader's URLs with cannot read objects
// either, even used directly against S3.
func TestPolicyNoneTakesTheActionAway(t *testing.T) {
	prefix := testPrefix(t)
	sts := newSTSRecorder(t)
	gw := startAPIGateway(t, prefix, []string{"UGW_STS_ENDPOINT=" + sts.srv.URL},
		"policy viewer download none", "policy uploader download none")
	uploader, viewer := newAPIClient(t, gw, "UPLOADER"), newAPIClient(t, gw, "VIEWER")

	data := []byte("quarterly numbers")
	var u uploadURL
	if status, code := uploader.call("POST", "/files/upload-url", map[string]any{"fileName": "q.txt", "fileSize": len(data), "contentType": "text/plain"}, &u); status != 200 {
		t.Fatalf("upload-url: %d %s", status, code)
	}
	if status, body := send(t, "PUT", u.UploadURL, u.RequiredHeaders, data); status != 200 {
		t.Fatalf("PUT: %d %s", status, body)
	}

	for _, c := range []struct {
		who string
		c   *apiClient
	}{{"uploader (own file)", uploader}, {"viewer", viewer}} {
		if status, code := c.c.call("GET", "/files/"+u.FileID+"/download-url", nil, nil); status != http.StatusForbidden {
			t.Errorf("%s download-url: %d %s, want 403", c.who, status, code)
		}
	}

	sessions := sts.sessions()
	if len(sessions) != 1 {
		t.Fatalf("%d AssumeRole calls through the recorder, want 1 (the uploader's)", len(sessions))
	}
	s := sessions[0]
	if strings.Contains(s.policy, "s3:GetObject") || !strings.Contains(s.policy, "s3:PutObject") {
		t.Errorf("the uploader's session policy: %s", s.policy)
	}
	session := s3With(credentials.StaticCredentialsProvider{Value: s.creds})
	_, err := session.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &env.Bucket, Key: &u.S3Key})
	wantDenied(t, "GetObject of the own file with the uploader's session", err)
	wantAllowed(t, "PutObject of an own file with the uploader's session", stsPut(session, lastDir(u.S3Key)+"/direct.txt"))
}

// lastDir is key without its last segment.
func lastDir(key string) string { return key[:strings.LastIndex(key, "/")] }

// A client asks for an upload URL for an empty file: the API answers 400
// with a JSON error, logs nothing at error level and stores nothing.
func TestUploadURLForAnEmptyFileIsABadRequest(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, apiSite(prefix))
	uploader := newAPIClient(t, gw, "UPLOADER")
	status, code := uploader.call("POST", "/files/upload-url", map[string]any{"fileName": "empty.txt", "fileSize": 0, "contentType": "text/plain"}, nil)
	if status != http.StatusBadRequest || code != "BAD_REQUEST" {
		t.Errorf("upload-url with fileSize 0: %d %s, want 400 BAD_REQUEST", status, code)
	}
	if lines := errorLogLines(gw); len(lines) > 0 {
		t.Errorf("error-level log lines:\n%s", strings.Join(lines, "\n"))
	}
	assertNothingLeft(t, prefix)
}

// A presigned upload URL stores one file once: replaying it, with the same
// or other bytes, gets 412 from S3 and leaves the stored object as it was.
// A multipart upload cannot replace an existing object either.
func TestPresignedUploadsAreCreateOnly(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, apiSite(prefix))
	uploader := newAPIClient(t, gw, "UPLOADER")
	data := fileBytes(t, pdfMagic, 31, 64*1024)

	var u uploadURL
	if status, code := uploader.call("POST", "/files/upload-url", map[string]any{"fileName": "contract.pdf", "fileSize": len(data), "contentType": "application/pdf"}, &u); status != 200 {
		t.Fatalf("upload-url: %d %s", status, code)
	}
	if u.RequiredHeaders["If-None-Match"] != "*" {
		t.Fatalf("requiredHeaders lack If-None-Match: * (%v)", u.RequiredHeaders)
	}
	if status, body := send(t, "PUT", u.UploadURL, u.RequiredHeaders, data); status != http.StatusOK {
		t.Fatalf("first PUT: %d %s", status, body)
	}
	want := sha256.Sum256(data)

	t.Run("the same request again is refused", func(t *testing.T) {
		if status, body := send(t, "PUT", u.UploadURL, u.RequiredHeaders, data); status != http.StatusPreconditionFailed {
			t.Errorf("replayed PUT: %d %s, want 412", status, body)
		}
	})
	t.Run("other bytes of the same length are refused", func(t *testing.T) {
		other := bytes.Repeat([]byte("x"), len(data))
		if status, body := send(t, "PUT", u.UploadURL, u.RequiredHeaders, other); status != http.StatusPreconditionFailed {
			t.Errorf("replayed PUT with other bytes: %d %s, want 412", status, body)
		}
	})
	t.Run("without If-None-Match the signature fails", func(t *testing.T) {
		h := map[string]string{}
		for k, v := range u.RequiredHeaders {
			if k != "If-None-Match" {
				h[k] = v
			}
		}
		if status, _ := send(t, "PUT", u.UploadURL, h, data); status != http.StatusForbidden {
			t.Errorf("PUT without If-None-Match: %d, want 403", status)
		}
	})
	got, err := env.S3().GetObject(context.Background(), &s3.GetObjectInput{Bucket: &env.Bucket, Key: &u.S3Key})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if sha256.Sum256(stored) != want {
		t.Errorf("the stored object changed: %d bytes", len(stored))
	}
	if !strings.Contains(gw.Logs(), "S3 honours If-None-Match") {
		t.Errorf("the gateway did not log what it found out about If-None-Match")
	}
	if _, objects, err := env.Leftovers(context.Background(), prefix+"users/_/"); err != nil || len(objects) != 0 {
		t.Errorf("the support probe left objects behind: %v %v", objects, err)
	}

	t.Run("completing a multipart upload onto an existing object is refused", func(t *testing.T) {
		var up initiated
		if status, code := uploader.call("POST", "/files/multipart/initiate", map[string]any{"fileName": "video.mp4", "fileSize": 6 << 20, "contentType": "application/pdf"}, &up); status != 200 {
			t.Fatalf("initiate: %d %s", status, code)
		}
		part := fileBytes(t, pdfMagic, 32, 6<<20)
		for _, p := range up.PartURLs {
			end := min(int64(p.PartNumber)*up.PartSize, int64(len(part)))
			if status, body := send(t, "PUT", p.URL, p.Headers, part[int64(p.PartNumber-1)*up.PartSize:end]); status != 200 {
				t.Fatalf("part %d: %d %s", p.PartNumber, status, body)
			}
		}
		// Something else stores the key first.
		if _, err := env.S3().PutObject(context.Background(), &s3.PutObjectInput{
			Bucket: &env.Bucket, Key: &up.S3Key, Body: strings.NewReader("first"),
			ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(env.KMSKeyID),
		}); err != nil {
			t.Fatal(err)
		}
		status, code := uploader.call("POST", "/files/multipart/complete", map[string]any{"fileId": up.FileID, "uploadId": up.UploadID, "uploadToken": up.UploadToken}, nil)
		if status != http.StatusConflict || code != "FILE_EXISTS" {
			t.Errorf("complete: %d %s, want 409 FILE_EXISTS", status, code)
		}
		if sum, size := objectSHA256(t, up.S3Key); size != 5 {
			t.Errorf("the first object was replaced: %d bytes, sha256 %s", size, sum)
		}
		uploads, _, err := env.Leftovers(context.Background(), prefix)
		if err != nil || len(uploads) != 0 {
			t.Errorf("multipart uploads left: %v %v", uploads, err)
		}
	})
	if lines := errorLogLines(gw); len(lines) > 0 {
		t.Errorf("error-level log lines:\n%s", strings.Join(lines, "\n"))
	}
}

// The audit log names the key each call acted on: the key of the new file
// for an upload URL or a multipart upload (with its upload id), the file a
// denied user asked for, and no key at all for a fileId the API refused.
// Emails appear as email because Cognito marks them verified.
func TestFileAPIAuditLinesNameTheResolvedKey(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, apiSite(prefix))
	uploader, admin := newAPIClient(t, gw, "UPLOADER"), newAPIClient(t, gw, "ADMIN")

	var u uploadURL
	if status, code := uploader.call("POST", "/files/upload-url", map[string]any{"fileName": "a.txt", "fileSize": 3, "contentType": "text/plain"}, &u); status != 200 {
		t.Fatalf("upload-url: %d %s", status, code)
	}
	var up initiated
	if status, code := uploader.call("POST", "/files/multipart/initiate", map[string]any{"fileName": "b.pdf", "fileSize": 6 << 20, "contentType": "application/pdf"}, &up); status != 200 {
		t.Fatalf("initiate: %d %s", status, code)
	}
	if status, code := uploader.call("POST", "/files/multipart/abort", map[string]any{"fileId": up.FileID, "uploadId": up.UploadID}, nil); status != 200 {
		t.Fatalf("abort: %d %s", status, code)
	}
	var adminFile uploadURL
	if status, code := admin.call("POST", "/files/upload-url", map[string]any{"fileName": "secret.txt", "fileSize": 3, "contentType": "text/plain"}, &adminFile); status != 200 {
		t.Fatalf("admin upload-url: %d %s", status, code)
	}
	if status, _ := uploader.call("GET", "/files/"+adminFile.FileID+"/download-url", nil, nil); status != http.StatusForbidden {
		t.Fatalf("uploader download of the admin's file: %d", status)
	}
	forged := "Li4vLi4vZXRjL3Bhc3N3ZA" // base64url of ../../etc/passwd
	if status, _ := uploader.call("DELETE", "/files/"+forged, nil, nil); status != http.StatusBadRequest {
		t.Fatalf("delete of a forged fileId: %d", status)
	}

	deadline := time.Now().Add(5 * time.Second)
	var lines []map[string]any
	for len(lines) < 6 && time.Now().Before(deadline) {
		lines = auditLines(t, gw)
		time.Sleep(100 * time.Millisecond)
	}
	if len(lines) != 6 {
		t.Fatalf("%d audit lines, want 6: %v", len(lines), lines)
	}
	tests := []struct {
		action, result, key, uploadID string
	}{
		{"upload_url", "ok", u.S3Key, ""},
		{"multipart_initiate", "ok", up.S3Key, up.UploadID},
		{"multipart_abort", "ok", up.S3Key, up.UploadID},
		{"upload_url", "ok", adminFile.S3Key, ""},
		{"download_url", "denied", adminFile.S3Key, ""},
		{"delete", "rejected", "", ""},
	}
	for i, tt := range tests {
		l := lines[i]
		key, _ := l["key"].(string)
		uploadID, _ := l["upload_id"].(string)
		if l["action"] != tt.action || l["result"] != tt.result || key != tt.key || uploadID != tt.uploadID {
			t.Errorf("audit line %d: %v\nwant action %s result %s key %q upload_id %q", i, l, tt.action, tt.result, tt.key, tt.uploadID)
		}
		// The test users' addresses are verified in Cognito: logged as email.
		if email, _ := l["email"].(string); !strings.HasSuffix(email, "@example.com") || l["unverified_email"] != nil {
			t.Errorf("audit line %d: email %v, unverified_email %v", i, l["email"], l["unverified_email"])
		}
	}
}

// One user may only be starting a few multipart uploads at the same time:
// with S3 slow to create uploads, the extra initiations of that user get
// 429 at once, and once the slow ones are done the user can start again.
func TestConcurrentMultipartInitiationsPerUserAreCapped(t *testing.T) {
	prefix := testPrefix(t)
	proxy, err := harness.NewHTTPFaultProxy(env.S3Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	proxy.Inject(harness.Fault{Op: harness.OpCreateMultipartUpload, Latency: 2 * time.Second})
	gw := startAPIGateway(t, prefix, []string{"UGW_S3_ENDPOINT=" + proxy.URL}, "max_concurrent_initiates 2")
	uploader := newAPIClient(t, gw, "UPLOADER")

	type answer struct {
		status     int
		code       string
		retryAfter string
		up         initiated
	}
	initiate := func() answer {
		b, _ := json.Marshal(map[string]any{"fileName": "v.pdf", "fileSize": 6 << 20, "contentType": "application/pdf"})
		req, _ := http.NewRequest("POST", gw.URL+"/api/files/multipart/initiate", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+uploader.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := gw.Client.Do(req)
		if err != nil {
			return answer{code: err.Error()}
		}
		defer resp.Body.Close()
		var env struct {
			Data  initiated
			Error struct{ Code string }
		}
		_ = json.NewDecoder(resp.Body).Decode(&env)
		return answer{status: resp.StatusCode, code: env.Error.Code, retryAfter: resp.Header.Get("Retry-After"), up: env.Data}
	}

	start := time.Now()
	answers := make([]answer, 6)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { answers[i] = initiate() })
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, a := range answers {
			if a.up.UploadID != "" {
				uploader.call("POST", "/files/multipart/abort", map[string]any{"fileId": a.up.FileID, "uploadId": a.up.UploadID}, nil)
			}
		}
	})
	ok, limited := 0, 0
	for _, a := range answers {
		switch {
		case a.status == http.StatusOK:
			ok++
		case a.status == http.StatusTooManyRequests && a.code == "TOO_MANY_REQUESTS" && a.retryAfter != "":
			limited++
		default:
			t.Errorf("initiate: %+v", a)
		}
	}
	if ok != 2 || limited != 4 {
		t.Errorf("%d started, %d refused with 429; want 2 and 4", ok, limited)
	}
	if created := proxy.Count(harness.OpCreateMultipartUpload, http.StatusOK); created != 2 {
		t.Errorf("S3 got %d CreateMultipartUpload calls, want 2", created)
	}
	t.Logf("six concurrent initiations took %s", time.Since(start).Round(time.Millisecond))

	proxy.Clear()
	again := initiate()
	if again.status != http.StatusOK {
		t.Errorf("initiate after the others finished: %+v", again)
	}
	if again.up.UploadID != "" {
		uploader.call("POST", "/files/multipart/abort", map[string]any{"fileId": again.up.FileID, "uploadId": again.up.UploadID}, nil)
	}
}
