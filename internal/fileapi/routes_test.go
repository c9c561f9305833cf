package fileapi

import (
	"cmp"
	"net/http"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/caddy-upload-gateway/upload-gateway/internal/presign"
)

// TestRoutes checks the route table: which pattern (and so which handler)
// serves a method and path, the audit action it reports, and the JSON 404
// or 405 (with Allow) when no route serves the request.
func TestRoutes(t *testing.T) {
	e := newEnv(t)
	id := fileID("users/ada/1/a.txt")
	tests := []struct {
		method, path string
		status       int    // 0: whatever the handler answers (not 404 or 405)
		route        string // Resolved.Route
		action       string // Resolved.Action
		allow        string
	}{
		{"GET", "/files", 0, "GET /files", "", ""},
		{"GET", "/files/", 0, "GET /files/{$}", "", ""},
		{"GET", "/files/limits", 0, "GET /files/limits", "", ""},
		{"POST", "/files/upload-url", 0, "POST /files/upload-url", "upload_url", ""},
		{"POST", "/files/upload-post", 0, "POST /files/upload-post", "upload_post", ""},
		{"POST", "/files/multipart/initiate", 0, "POST /files/multipart/initiate", "multipart_initiate", ""},
		{"POST", "/files/multipart/sign-parts", 0, "POST /files/multipart/sign-parts", "", ""},
		{"GET", "/files/multipart/u1/parts", 0, "GET /files/multipart/{uploadId}/parts", "", ""},
		{"POST", "/files/multipart/complete", 0, "POST /files/multipart/complete", "multipart_complete", ""},
		{"POST", "/files/multipart/abort", 0, "POST /files/multipart/abort", "multipart_abort", ""},
		{"GET", "/files/" + id, 0, "GET /files/{fileId}", "", ""},
		{"GET", "/files/" + id + "/download-url", 0, "GET /files/{fileId}/download-url", "download_url", ""},
		{"DELETE", "/files/" + id, 0, "DELETE /files/{fileId}", "delete", ""},
		{"POST", "/files/" + id + "/confirm", 0, "POST /files/{fileId}/confirm", "confirm", ""},
		{"GET", "/files/not-base64!", 0, "GET /files/{fileId}", "", ""},

		{"DELETE", "/files", 405, "", "", "GET"},
		{"HEAD", "/files", 405, "", "", "GET"},
		{"GET", "/files/upload-url", 405, "", "", "POST"},
		{"POST", "/files/limits", 405, "", "", "GET"},
		{"PUT", "/files/upload-post", 405, "", "", "POST"},
		{"GET", "/files/multipart/initiate", 405, "", "", "POST"},
		{"POST", "/files/multipart/u1/parts", 405, "", "", "GET"},
		{"POST", "/files/" + id, 405, "", "", "GET, DELETE"},
		{"HEAD", "/files/" + id + "/download-url", 405, "", "", "GET"},
		{"GET", "/files/" + id + "/confirm", 405, "", "", "POST"},

		{"GET", "/nope", 404, "", "", ""},
		{"GET", "/filesx", 404, "", "", ""},
		{"GET", "/files/multipart", 404, "", "", ""},
		{"GET", "/files/multipart/download-url", 404, "", "", ""},
		{"GET", "/files/limits/download-url", 404, "", "", ""},
		{"GET", "/files/upload-post/download-url", 404, "", "", ""},
		{"POST", "/files/multipart/start", 404, "", "", ""},
		{"GET", "/files/" + id + "/", 404, "", "", ""},
		{"GET", "/files//download-url", 404, "", "", ""},
		{"GET", "/files/a/../" + id, 404, "", "", ""},
		{"GET", "/files/multipart/u1/parts/x", 404, "", "", ""},
		{"POST", "/files/multipart/confirm", 404, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var body any
			if tt.method == http.MethodPost {
				body = map[string]any{}
			}
			res := e.do(t, &ada, tt.method, tt.path, body)
			switch {
			case tt.status != 0 && res.status != tt.status:
				t.Fatalf("status %d %s, want %d", res.status, res.Error.Code, tt.status)
			case tt.status == 0 && (res.status == 404 && res.Error.Code == "NOT_FOUND" || res.status == 405):
				t.Fatalf("status %d %s, want a route's answer", res.status, res.Error.Code)
			}
			if e.resolved.Route != tt.route || e.resolved.Action != tt.action {
				t.Errorf("route %q action %q, want %q %q", e.resolved.Route, e.resolved.Action, tt.route, tt.action)
			}
			if got := res.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
}

// A request without a user still names its route: metrics and audit
// label 401s like any other answer of the route.
func TestRouteWithoutSubject(t *testing.T) {
	e := newEnv(t)
	res := e.do(t, nil, "POST", "/files/upload-url", map[string]any{})
	expect(t, res, http.StatusUnauthorized, "UNAUTHENTICATED")
	if e.resolved.Route != "POST /files/upload-url" || e.resolved.Action != "upload_url" {
		t.Errorf("resolved %+v", e.resolved)
	}
}

// URLs are signed with the user's credentials and the bucket's encryption;
// POST forms with PostCredentials when set.
func TestSigningCredentialsAndEncryption(t *testing.T) {
	wantSSE := presign.Encryption{Mode: "aws:kms", KMSKeyID: "alias/uploads", BucketKey: true}
	for _, post := range []string{"", "gateway"} {
		e := newEnv(t, func(c *Config) {
			if post != "" {
				c.PostCredentials = credentials.NewStaticCredentialsProvider(post, "secret", "")
			}
		})
		expect(t, e.do(t, &alice, "POST", "/files/upload-url", map[string]any{"fileName": "a.txt", "fileSize": 1, "contentType": "text/plain"}), 200, "")
		expect(t, e.do(t, &alice, "POST", "/files/upload-post", map[string]any{"fileName": "a.txt", "contentType": "text/plain"}), 200, "")
		if want := []string{"alice", cmp.Or(post, "alice")}; !slices.Equal(e.presigner.keys, want) {
			t.Errorf("post_policy_credentials %q: signed as %v, want %v", post, e.presigner.keys, want)
		}
		if e.presigner.puts[0].Encryption != wantSSE || e.presigner.posts[0].Encryption != wantSSE {
			t.Errorf("encryption %+v and %+v, want %+v", e.presigner.puts[0].Encryption, e.presigner.posts[0].Encryption, wantSSE)
		}
	}
}
