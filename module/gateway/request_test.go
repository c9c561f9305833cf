package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// A user id or name inserted in a key template stays one key segment: it
// can neither climb out of its folder nor nest files in another user's.
func TestObjectKeyEscapesIdentity(t *testing.T) {
	tests := []struct {
		tmpl, id, want string
	}{
		{"users/{http.auth.user.id}/f", "alice", "uploads/users/alice/f"},
		{"users/{http.auth.user.id}/f", "victim/x", "uploads/users/victim%2Fx/f"},
		{"users/{http.auth.user.id}/f", "a/../b", "uploads/users/a%2F..%2Fb/f"},
		{"users/{http.auth.user.id}/f", "..", "uploads/users/%2E%2E/f"},
		{"users/{http.auth.user.id}/f", `evil\victim`, "uploads/users/evil%5Cvictim/f"},
		{"users/{http.auth.user.id}/f", "50%", "uploads/users/50%25/f"},
		{"users/{http.auth.user.id}/f", "zoë", "uploads/users/zoë/f"},
		// Other placeholders are inserted as they are.
		{"{http.vars.dir}/{http.auth.user.id}", "c/d", "uploads/a/b/c%2Fd"},
	}
	for _, tt := range tests {
		s3api := newFakeS3()
		g := testGateway(t, s3api, func(g *Gateway) { g.Key = tt.tmpl })
		r := httptest.NewRequest(http.MethodPut, "/up/x", strings.NewReader("data"))
		w, _ := serve(g, r, okNext, func(repl *caddy.Replacer) {
			repl.Set("http.vars.dir", "a/b")
			repl.Set("http.auth.user.id", tt.id)
			repl.Set("http.auth.user.role", "uploader")
		})
		if _, ok := s3api.objects[tt.want]; !ok || w.Code != http.StatusCreated {
			t.Errorf("id %q: answered %d, stored %v; want key %q", tt.id, w.Code, s3api.objects, tt.want)
		}
	}
}
