package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-upload-gateway/upload-gateway/internal/inflight"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"
	"github.com/caddy-upload-gateway/upload-gateway/internal/uploadreq"

	"github.com/caddy-upload-gateway/upload-gateway/module/metricsapp"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

// fakeS3 is an in-memory S3 speaking the calls s3stream makes. It records
// stored objects and every call, and fails UploadPart for failPart.
type fakeS3 struct {
	mu       sync.Mutex
	objects  map[string][]byte
	open     map[string]bool // multipart uploads neither completed nor aborted
	calls    []string
	failPart int32
	nextID   int
}

func newFakeS3() *fakeS3 { return &fakeS3{objects: map[string][]byte{}, open: map[string]bool{}} }

func (f *fakeS3) call(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
}

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f.call("PutObject")
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[*in.Key] = b
	return &s3.PutObjectOutput{ETag: aws.String(`"etag"`)}, nil
}

func (f *fakeS3) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	f.call("CreateMultipartUpload")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	id := fmt.Sprintf("mpu-%d", f.nextID)
	f.open[id] = true
	return &s3.CreateMultipartUploadOutput{UploadId: &id}, nil
}

func (f *fakeS3) UploadPart(_ context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	f.call("UploadPart")
	if _, err := io.Copy(io.Discard, in.Body); err != nil {
		return nil, err
	}
	if *in.PartNumber == f.failPart {
		return nil, errors.New("injected part failure")
	}
	return &s3.UploadPartOutput{ETag: aws.String(fmt.Sprintf(`"part-%d"`, *in.PartNumber))}, nil
}

func (f *fakeS3) CompleteMultipartUpload(_ context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	f.call("CompleteMultipartUpload")
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.open, *in.UploadId)
	f.objects[*in.Key] = nil
	return &s3.CompleteMultipartUploadOutput{ETag: aws.String(`"etag-mpu"`)}, nil
}

func (f *fakeS3) AbortMultipartUpload(_ context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	f.call("AbortMultipartUpload")
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.open, *in.UploadId)
	return &s3.AbortMultipartUploadOutput{}, nil
}

func (f *fakeS3) PutObjectTagging(context.Context, *s3.PutObjectTaggingInput, ...func(*s3.Options)) (*s3.PutObjectTaggingOutput, error) {
	f.call("PutObjectTagging")
	return &s3.PutObjectTaggingOutput{}, nil
}

func (f *fakeS3) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	f.call("DeleteObject")
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.objects, *in.Key)
	return &s3.DeleteObjectOutput{}, nil
}

func (f *fakeS3) HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	f.call("HeadObject")
	return nil, errors.New("not found")
}

// state returns the stored keys, the open multipart uploads and the calls.
func (f *fakeS3) state() (objects, open int, calls string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.objects), len(f.open), strings.Join(f.calls, ",")
}

// testGateway is a provisioned gateway (without Caddy) storing in api.
func testGateway(t *testing.T, api s3stream.API, mutate func(*Gateway)) *Gateway {
	t.Helper()
	g := &Gateway{S3Config: shared.S3Config{Bucket: "b", Encryption: shared.EncryptionNone}, AllowAnonymous: true,
		MemoryLimit: 64 << 20, PartSize: s3limits.MinPartSize, Concurrency: 1, logger: zap.NewNop(),
		rec: &metricsapp.Recorder{Audit: zap.NewNop()}}
	if mutate != nil {
		mutate(g)
	}
	g.ApplyDefaults()
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	g.flow = g.flowConfig()
	g.flow.SignatureKey = []byte(strings.Repeat("k", uploadreq.MinSignatureKey))
	if err := g.flow.Prepare(); err != nil {
		t.Fatal(err)
	}
	g.budget = s3stream.NewBufferBudget(g.MemoryLimit, 0)
	g.perClient = inflight.New(g.MaxUploadsPerClient)
	g.uploader = s3stream.New(api, s3stream.Options{PartSize: g.PartSize, Concurrency: g.Concurrency, Budget: g.budget})
	g.flow.Uploader = g.uploader
	return g
}

// serve runs one request through g.ServeHTTP with a Caddy replacer, after
// the set funcs have set placeholders.
func serve(g *Gateway, r *http.Request, next caddyhttp.Handler, set ...func(*caddy.Replacer)) (*httptest.ResponseRecorder, error) {
	repl := caddy.NewReplacer()
	for _, f := range set {
		f(repl)
	}
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	w := httptest.NewRecorder()
	err := g.ServeHTTP(w, r.WithContext(ctx), next)
	return w, err
}

func formRequest(t *testing.T, files ...string) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i, content := range files {
		fw, err := mw.CreateFormFile(fmt.Sprintf("f%d", i), fmt.Sprintf("f%d.txt", i))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(fw, content)
	}
	_ = mw.WriteField("title", "hello")
	_ = mw.Close()
	r := httptest.NewRequest(http.MethodPost, "/up", &buf)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	return r
}

var okNext = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

// In pass mode, an upstream that fails rolls the stored objects back; one
// that succeeds keeps them and sees the rewritten form.
func TestServePassRollback(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		wantObjects int
	}{
		{"upstream 500", http.StatusInternalServerError, 0},
		{"upstream 409", http.StatusConflict, 0},
		{"upstream 200", http.StatusOK, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s3api := newFakeS3()
			g := testGateway(t, s3api, func(g *Gateway) { g.Output = OutputPass })
			var seen string
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				_ = r.ParseMultipartForm(1 << 20)
				seen = r.FormValue("f0.key") + "|" + r.FormValue("title")
				w.WriteHeader(tt.status)
				return nil
			})
			w, err := serve(g, formRequest(t, "one", "two"), next)
			if err != nil || w.Code != tt.status {
				t.Fatalf("ServeHTTP = %d, %v; want %d", w.Code, err, tt.status)
			}
			if !strings.HasPrefix(seen, "uploads/") || !strings.HasSuffix(seen, "|hello") {
				t.Errorf("upstream saw %q, want the stored key and the plain field", seen)
			}
			if objects, _, calls := s3api.state(); objects != tt.wantObjects {
				t.Errorf("%d objects left, want %d (calls %s)", objects, tt.wantObjects, calls)
			}
			if used := g.budget.Used(); used != 0 {
				t.Errorf("%d bytes of memory_limit still held", used)
			}
		})
	}
}

// A panic in the next handler (reverse_proxy's ErrAbortHandler) rolls the
// objects back, goes on up, and leaves no memory or per-client slot held.
func TestServePassPanicRollsBack(t *testing.T) {
	s3api := newFakeS3()
	g := testGateway(t, s3api, func(g *Gateway) { g.Output = OutputPass; g.MaxUploadsPerClient = 1 })
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { panic(http.ErrAbortHandler) })
	r := formRequest(t, "one", "two")
	r.RemoteAddr = "192.0.2.1:1"
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler", v)
			}
		}()
		_, _ = serve(g, r, next)
	}()
	if objects, _, calls := s3api.state(); objects != 0 || !strings.Contains(calls, "DeleteObject") {
		t.Errorf("%d objects left after the panic (calls %s)", objects, calls)
	}
	if used := g.budget.Used(); used != 0 {
		t.Errorf("%d bytes of memory_limit still held", used)
	}
	if _, ok := g.perClient.Acquire("ip:192.0.2.1"); !ok {
		t.Error("the client's upload slot is still held")
	}
}

// Metadata over S3's budget is refused with 400 before anything is sent.
func TestServeMetadataLimit(t *testing.T) {
	s3api := newFakeS3()
	g := testGateway(t, s3api, func(g *Gateway) { g.ClientMetadata = true })
	r := httptest.NewRequest(http.MethodPut, "/up/a.txt", strings.NewReader("data"))
	r.Header.Set("X-Upload-Meta-Note", strings.Repeat("x", 1000))
	r.Header.Set("X-Upload-Meta-Other", strings.Repeat("y", 1000))
	w, err := serve(g, r, okNext)
	if err != nil || w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "METADATA_TOO_LARGE") {
		t.Fatalf("ServeHTTP = %d %s, %v; want 400 METADATA_TOO_LARGE", w.Code, w.Body, err)
	}
	if _, _, calls := s3api.state(); calls != "" {
		t.Errorf("S3 was called: %s", calls)
	}
}

// A part S3 refuses fails the request with 502 and aborts the multipart
// upload; nothing is left behind and no memory is held.
func TestServeFailedPartAborts(t *testing.T) {
	s3api := newFakeS3()
	s3api.failPart = 2
	g := testGateway(t, s3api, nil)
	body := bytes.Repeat([]byte("z"), 3*int(s3limits.MinPartSize)+1)
	r := httptest.NewRequest(http.MethodPut, "/up/big.bin", bytes.NewReader(body))
	w, err := serve(g, r, okNext)
	if err != nil || w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "STORAGE_ERROR") {
		t.Fatalf("ServeHTTP = %d %s, %v; want 502 STORAGE_ERROR", w.Code, w.Body, err)
	}
	g.uploader.Wait(time.Minute)
	objects, open, calls := s3api.state()
	if objects != 0 || open != 0 || !strings.Contains(calls, "AbortMultipartUpload") {
		t.Errorf("%d objects, %d open multipart uploads after the failure (calls %s)", objects, open, calls)
	}
	if used := g.budget.Used(); used != 0 {
		t.Errorf("%d bytes of memory_limit still held", used)
	}
}

// A raw body and a form are stored and described in the JSON answer.
func TestServeRespond(t *testing.T) {
	s3api := newFakeS3()
	g := testGateway(t, s3api, nil)
	w, err := serve(g, formRequest(t, "one", "two"), okNext)
	if err != nil || w.Code != http.StatusCreated || strings.Count(w.Body.String(), `"s3Key"`) != 2 {
		t.Fatalf("ServeHTTP = %d %s, %v", w.Code, w.Body, err)
	}
	if objects, _, _ := s3api.state(); objects != 2 {
		t.Errorf("%d objects stored, want 2", objects)
	}
}
