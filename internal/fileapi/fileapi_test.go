package fileapi

import (
	"encoding/base64"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
)

func TestNew(t *testing.T) {
	t.Parallel()
	base := func() Config {
		return Config{Bucket: "b", Store: newFakeStore(), Presigner: &fakePresigner{}, Credentials: userCredentials, Authorizer: &fakeAuth{}, Secret: testSecret}
	}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr bool
	}{
		{"defaults", func(*Config) {}, false},
		{"no bucket", func(c *Config) { c.Bucket = "" }, true},
		{"no store", func(c *Config) { c.Store = nil }, true},
		{"no presigner", func(c *Config) { c.Presigner = nil }, true},
		{"no credentials", func(c *Config) { c.Credentials = nil }, true},
		{"no authorizer", func(c *Config) { c.Authorizer = nil }, true},
		{"short secret", func(c *Config) { c.Secret = []byte("short") }, true},
		{"short old secret", func(c *Config) { c.OldSecrets = [][]byte{[]byte("short")} }, true},
		{"prefix with ..", func(c *Config) { c.Prefix = "a/../b" }, true},
		{"single size over 5 GiB", func(c *Config) { c.MaxSingleSize = 6 << 30 }, true},
		{"file size over 5 TiB", func(c *Config) { c.MaxFileSize = 6 << 40 }, true},
		{"part size under 5 MiB", func(c *Config) { c.DefaultPartSize = 1 << 20 }, true},
		{"part batch over 100", func(c *Config) { c.PartBatch = 101 }, true},
		{"prefix with slashes", func(c *Config) { c.Prefix = "/uploads/" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			tt.mod(&cfg)
			svc, err := New(cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New() error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && tt.name == "defaults" {
				c := svc.cfg
				if c.MaxSingleSize != 100<<20 || c.MaxFileSize != 5<<40 || c.DefaultPartSize != 16<<20 || c.PartBatch != 20 {
					t.Errorf("defaults not applied: %+v", c)
				}
			}
		})
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name      string
		user      *policy.Subject
		method    string
		target    string
		body      any
		ctype     string // overrides the JSON content type
		status    int
		code      string
		wantAllow string
	}{
		{"unknown route", &alice, "GET", "/nope", nil, "", 404, "NOT_FOUND", ""},
		{"files prefix only", &alice, "GET", "/filesx", nil, "", 404, "NOT_FOUND", ""},
		{"unknown subroute", &alice, "POST", "/files/multipart/start", "{}", "", 404, "NOT_FOUND", ""},
		{"bare multipart", &alice, "GET", "/files/multipart", nil, "", 404, "NOT_FOUND", ""},
		{"too deep", &alice, "GET", "/files/a/b/c", nil, "", 404, "NOT_FOUND", ""},
		{"empty segment", &alice, "GET", "/files//download-url", nil, "", 404, "NOT_FOUND", ""},
		{"wrong method", &alice, "GET", "/files/upload-url", nil, "", 405, "METHOD_NOT_ALLOWED", "POST"},
		{"wrong method on file", &alice, "POST", "/files/" + fileID("users/alice/x/a.txt"), "{}", "", 405, "METHOD_NOT_ALLOWED", "GET, DELETE"},
		{"wrong method on list", &alice, "DELETE", "/files", nil, "", 405, "METHOD_NOT_ALLOWED", "GET"},
		{"no subject", nil, "POST", "/files/upload-url", `{}`, "", 401, "UNAUTHENTICATED", ""},
		{"subject without id", &policy.Subject{}, "GET", "/files", nil, "", 401, "UNAUTHENTICATED", ""},
		{"not JSON", &alice, "POST", "/files/upload-url", `fileName=a`, "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"no content type", &alice, "POST", "/files/upload-url", `{}`, "none", 415, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"bad JSON", &alice, "POST", "/files/upload-url", `{"fileName":`, "", 400, "BAD_REQUEST", ""},
		{"array body", &alice, "POST", "/files/upload-url", `[]`, "", 400, "BAD_REQUEST", ""},
		{"wrong field type", &alice, "POST", "/files/upload-url", `{"fileName":"a.txt","fileSize":"1","contentType":"text/plain"}`, "", 400, "BAD_REQUEST", ""},
		{"fractional size", &alice, "POST", "/files/upload-url", `{"fileName":"a.txt","fileSize":1.5,"contentType":"text/plain"}`, "", 400, "BAD_REQUEST", ""},
		{"trailing data", &alice, "POST", "/files/upload-url", `{"fileName":"a.txt","fileSize":1,"contentType":"text/plain"} {}`, "", 400, "BAD_REQUEST", ""},
		{"body over 64 KiB", &alice, "POST", "/files/upload-url", `{"fileName":"` + strings.Repeat("a", 64<<10) + `"}`, "", 413, "REQUEST_TOO_LARGE", ""},
		{"unknown fields ignored", &alice, "POST", "/files/upload-url", `{"fileName":"a.txt","fileSize":1,"contentType":"text/plain","extra":{"x":1}}`, "application/json; charset=utf-8", 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rd *strings.Reader
			if s, ok := tt.body.(string); ok {
				rd = strings.NewReader(s)
			} else {
				rd = strings.NewReader("")
			}
			r := httptest.NewRequest(tt.method, tt.target, rd)
			switch tt.ctype {
			case "":
				r.Header.Set("Content-Type", "application/json")
			case "none":
			default:
				r.Header.Set("Content-Type", tt.ctype)
			}
			if tt.user != nil {
				r = r.WithContext(WithSubject(r.Context(), *tt.user))
			}
			w := httptest.NewRecorder()
			e.svc.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if tt.code != "" && !strings.Contains(w.Body.String(), `"code":"`+tt.code+`"`) {
				t.Errorf("body %s, want code %s", w.Body, tt.code)
			}
			if got := w.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

func TestUploadURL(t *testing.T) {
	t.Parallel()
	sum := strings.Repeat("ab", 32)
	sumB64 := base64.StdEncoding.EncodeToString(mustHex(t, sum))
	tests := []struct {
		name   string
		user   policy.Subject
		body   map[string]any
		status int
		code   string
		check  func(t *testing.T, e *env, res result)
	}{
		{
			name:   "happy path",
			user:   alice,
			body:   map[string]any{"fileName": "report.pdf", "fileSize": 1234, "contentType": "application/pdf", "metadata": map[string]string{"Project": "x"}, "checksumSHA256": sum},
			status: 200,
			check: func(t *testing.T, e *env, res result) {
				var got uploadURLResponse
				res.data(t, &got)
				key := "users/alice/00000000-0000-0000-0000-000000000001/report.pdf"
				if got.S3Key != key || got.FileID != fileID(key) || got.Method != "PUT" || got.ExpiresIn != 900 {
					t.Errorf("response %+v", got)
				}
				if got.RequiredHeaders["Content-Type"] != "application/pdf" || got.RequiredHeaders["Content-Length"] != "1234" {
					t.Errorf("requiredHeaders %v", got.RequiredHeaders)
				}
				in := e.presigner.puts[0]
				if in.Bucket != "bucket" || in.Key != key || in.ContentLength != 1234 || in.ContentType != "application/pdf" ||
					in.ChecksumSHA256 != sumB64 || in.Expires != DefaultURLExpiry {
					t.Errorf("PutRequest %+v", in)
				}
				wantMeta := map[string]string{"project": "x", "original-name": "report.pdf", "uploaded-by": "alice", "user-role": "uploader", "sha256": sum}
				if !maps.Equal(in.Metadata, wantMeta) {
					t.Errorf("metadata %v, want %v", in.Metadata, wantMeta)
				}
				if in.ContentDisposition != objectkey.ContentDisposition("report.pdf") {
					t.Errorf("ContentDisposition %q", in.ContentDisposition)
				}
				if !slices.Equal(e.presigns, []string{"put"}) {
					t.Errorf("OnPresign %v", e.presigns)
				}
			},
		},
		{
			name:   "non-ASCII file name",
			user:   alice,
			body:   map[string]any{"fileName": "../Résumé 中文.pdf", "fileSize": 10, "contentType": "application/pdf"},
			status: 200,
			check: func(t *testing.T, e *env, res result) {
				in := e.presigner.puts[0]
				if in.Key != "users/alice/00000000-0000-0000-0000-000000000001/Résumé 中文.pdf" {
					t.Errorf("key %q", in.Key)
				}
				if got, _ := objectkey.DecodeMetadataValue(in.Metadata["original-name"]); got != "../Résumé 中文.pdf" {
					t.Errorf("original-name %q decodes to %q", in.Metadata["original-name"], got)
				}
				for _, v := range in.Metadata {
					if strings.ContainsFunc(v, func(r rune) bool { return r > 0x7e || r < 0x20 }) {
						t.Errorf("metadata value %q is not printable ASCII", v)
					}
				}
				if !strings.Contains(in.ContentDisposition, "filename*=UTF-8''R%C3%A9sum%C3%A9") {
					t.Errorf("ContentDisposition %q", in.ContentDisposition)
				}
			},
		},
		{
			name:   "base64 checksum",
			user:   alice,
			body:   map[string]any{"fileName": "a.txt", "fileSize": 1, "contentType": "text/plain; charset=UTF-8", "checksumSHA256": sumB64},
			status: 200,
			check: func(t *testing.T, e *env, res result) {
				in := e.presigner.puts[0]
				if in.ChecksumSHA256 != sumB64 || in.Metadata["sha256"] != sum || in.ContentType != "text/plain; charset=utf-8" {
					t.Errorf("PutRequest %+v", in)
				}
			},
		},
		{
			name:   "admin uploads to own prefix",
			user:   ada,
			body:   map[string]any{"fileName": "a.png", "fileSize": 1, "contentType": "image/png"},
			status: 200,
		},
		{
			name:   "viewer may not upload",
			user:   vic,
			body:   map[string]any{"fileName": "a.png", "fileSize": 1, "contentType": "image/png"},
			status: 403, code: "FORBIDDEN",
			check: func(t *testing.T, e *env, _ result) {
				if len(e.presigner.puts) != 0 || !slices.Equal(e.denied, []string{"upload"}) {
					t.Errorf("presigned %d, denied %v", len(e.presigner.puts), e.denied)
				}
			},
		},
		{
			name:   "role none may not upload",
			user:   nobody,
			body:   map[string]any{"fileName": "a.png", "fileSize": 1, "contentType": "image/png"},
			status: 403, code: "FORBIDDEN",
		},
		{
			name:   "too large",
			user:   alice,
			body:   map[string]any{"fileName": "a.png", "fileSize": 100<<20 + 1, "contentType": "image/png"},
			status: 413, code: "FILE_TOO_LARGE",
		},
		{
			name:   "exactly the limit",
			user:   alice,
			body:   map[string]any{"fileName": "a.png", "fileSize": 100 << 20, "contentType": "image/png"},
			status: 200,
		},
		{
			name:   "type not allowed",
			user:   alice,
			body:   map[string]any{"fileName": "a.html", "fileSize": 1, "contentType": "text/html"},
			status: 415, code: "CONTENT_TYPE_NOT_ALLOWED",
		},
		{
			name:   "octet-stream not allowed",
			user:   alice,
			body:   map[string]any{"fileName": "a.bin", "fileSize": 1, "contentType": "application/octet-stream"},
			status: 415, code: "CONTENT_TYPE_NOT_ALLOWED",
		},
		{
			name:   "missing content type",
			user:   alice,
			body:   map[string]any{"fileName": "a.png", "fileSize": 1},
			status: 400, code: "BAD_REQUEST",
		},
		{
			name:   "wildcard content type",
			user:   alice,
			body:   map[string]any{"fileName": "a.png", "fileSize": 1, "contentType": "image/*"},
			status: 400, code: "BAD_REQUEST",
		},
		{
			name:   "missing file size",
			user:   alice,
			body:   map[string]any{"fileName": "a.png", "contentType": "image/png"},
			status: 400, code: "BAD_REQUEST",
		},
		{
			// S3 servers disagree on a presigned PUT of 0 bytes: refused
			// before anything is signed, never a 502.
			name:   "empty file",
			user:   alice,
			body:   map[string]any{"fileName": "a.txt", "fileSize": 0, "contentType": "text/plain"},
			status: 400, code: "BAD_REQUEST",
			check: func(t *testing.T, e *env, _ result) {
				if len(e.presigner.puts) != 0 {
					t.Errorf("presigned %d URLs", len(e.presigner.puts))
				}
			},
		},
		{
			name:   "negative file size",
			user:   alice,
			body:   map[string]any{"fileName": "a.png", "fileSize": -1, "contentType": "image/png"},
			status: 400, code: "BAD_REQUEST",
		},
		{
			name:   "missing file name",
			user:   alice,
			body:   map[string]any{"fileName": "  ", "fileSize": 1, "contentType": "image/png"},
			status: 400, code: "BAD_REQUEST",
		},
		{
			name:   "bad checksum",
			user:   alice,
			body:   map[string]any{"fileName": "a.png", "fileSize": 1, "contentType": "image/png", "checksumSHA256": "abc"},
			status: 400, code: "BAD_REQUEST",
		},
		{
			name:   "invalid metadata name",
			user:   alice,
			body:   map[string]any{"fileName": "a.png", "fileSize": 1, "contentType": "image/png", "metadata": map[string]string{"a b": "x"}},
			status: 400, code: "INVALID_METADATA",
		},
		{
			name:   "metadata too large",
			user:   alice,
			body:   map[string]any{"fileName": "a.png", "fileSize": 1, "contentType": "image/png", "metadata": map[string]string{"a": strings.Repeat("x", 1000), "b": strings.Repeat("y", 1000)}},
			status: 400, code: "METADATA_TOO_LARGE",
		},
		{
			name:   "metadata value not a string",
			user:   alice,
			body:   map[string]any{"fileName": "a.png", "fileSize": 1, "contentType": "image/png", "metadata": map[string]any{"n": 1}},
			status: 400, code: "BAD_REQUEST",
		},
		{
			name:   "reserved metadata dropped",
			user:   alice,
			body:   map[string]any{"fileName": "a.png", "fileSize": 1, "contentType": "image/png", "metadata": map[string]string{"Uploaded-By": "mallory", "sha256": "0", "size": "1", "field": "f", "user-role": "admin", "original-name": "x"}},
			status: 200,
			check: func(t *testing.T, e *env, _ result) {
				want := map[string]string{"original-name": "a.png", "uploaded-by": "alice", "user-role": "uploader"}
				if got := e.presigner.puts[0].Metadata; !maps.Equal(got, want) {
					t.Errorf("metadata %v, want %v", got, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			res := e.do(t, &tt.user, "POST", "/files/upload-url", tt.body)
			expect(t, res, tt.status, tt.code)
			if tt.check != nil {
				tt.check(t, e, res)
			}
		})
	}
}

func TestUploadURLPresignerError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.presigner.err = errFakeDenied
	res := e.do(t, &alice, "POST", "/files/upload-url", map[string]any{"fileName": "a.png", "fileSize": 1, "contentType": "image/png"})
	expect(t, res, http.StatusBadGateway, "STORAGE_ERROR")
	if strings.Contains(res.Error.Message, "fake") {
		t.Errorf("message leaks the cause: %q", res.Error.Message)
	}
	if !slices.Equal(e.errors, []int{502}) {
		t.Errorf("OnError statuses %v", e.errors)
	}
}

func TestUploadPost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		user             policy.Subject
		body             map[string]any
		status           int
		code             string
		wantMin, wantMax int64
	}{
		{"no size", alice, map[string]any{"fileName": "a.png", "contentType": "image/png"}, 200, "", 1, 100 << 20},
		{"declared size", alice, map[string]any{"fileName": "a.png", "fileSize": 500, "contentType": "image/png"}, 200, "", 1, 500},
		{"empty file", alice, map[string]any{"fileName": "a.txt", "fileSize": 0, "contentType": "text/plain"}, 200, "", 0, 0},
		{"too large", alice, map[string]any{"fileName": "a.png", "fileSize": 100<<20 + 1, "contentType": "image/png"}, 413, "FILE_TOO_LARGE", 0, 0},
		{"negative", alice, map[string]any{"fileName": "a.png", "fileSize": -5, "contentType": "image/png"}, 400, "BAD_REQUEST", 0, 0},
		{"bad type", alice, map[string]any{"fileName": "a.exe", "contentType": "application/x-msdownload"}, 415, "CONTENT_TYPE_NOT_ALLOWED", 0, 0},
		{"viewer", vic, map[string]any{"fileName": "a.png", "contentType": "image/png"}, 403, "FORBIDDEN", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			res := e.do(t, &tt.user, "POST", "/files/upload-post", tt.body)
			expect(t, res, tt.status, tt.code)
			if tt.status != 200 {
				if len(e.presigner.posts) != 0 {
					t.Errorf("presigned a POST on failure")
				}
				return
			}
			var got uploadPostResponse
			res.data(t, &got)
			in := e.presigner.posts[0]
			if in.MinSize != tt.wantMin || in.MaxSize != tt.wantMax || got.MaxSize != tt.wantMax {
				t.Errorf("range [%d, %d], maxSize %d; want [%d, %d]", in.MinSize, in.MaxSize, got.MaxSize, tt.wantMin, tt.wantMax)
			}
			if got.S3Key != in.Key || got.FileID != fileID(in.Key) || got.URL != "https://s3.test/" || got.Fields["key"] != in.Key || got.ExpiresIn != 900 {
				t.Errorf("response %+v", got)
			}
			if in.Metadata["uploaded-by"] != "alice" || in.ContentType != tt.body["contentType"] {
				t.Errorf("PostRequest %+v", in)
			}
			if !slices.Equal(e.presigns, []string{"post"}) {
				t.Errorf("OnPresign %v", e.presigns)
			}
		})
	}
}
