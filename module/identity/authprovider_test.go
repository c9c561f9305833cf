package identity

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
)

// newLocalProvider provisions a Provider backed by a local identity provider
// in a temporary directory, and returns an issuer for tokens it accepts.
func newLocalProvider(t *testing.T) (*Provider, *localidp.Issuer, *localidp.Users) {
	t.Helper()
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), localidp.MinHashCost)
	users := fmt.Sprintf(`{"users":[{"email":"a@example.com","password_hash":%q,"groups":["uploader"]}]}`, hash)
	usersFile := filepath.Join(dir, "users.json")
	if err := os.WriteFile(usersFile, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	keysDir := filepath.Join(dir, "keys")
	p := &Provider{Identity: Identity{Local: &LocalIdentity{UsersFile: usersFile, KeysDir: keysDir}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := p.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	keys, err := localidp.OpenKeyStore(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	u, err := localidp.LoadUsers(usersFile)
	if err != nil {
		t.Fatal(err)
	}
	return p, &localidp.Issuer{Issuer: "upload-gateway-local", ClientID: "upload-gateway", Keys: keys}, u
}

func TestProviderAuthenticate(t *testing.T) {
	p, issuer, users := newLocalProvider(t)
	user, err := users.Authenticate("a@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := issuer.Issue(user)
	if err != nil {
		t.Fatal(err)
	}
	preflight := map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"}
	tests := []struct {
		name       string
		method     string
		auth       string
		wantOK     bool
		wantRole   string
		wantHeader string
		header     map[string]string
		body       string
		chunked    bool
	}{
		{"valid id token", "GET", "Bearer " + tokens.IDToken, true, "uploader", "", nil, "", false},
		{"lowercase scheme", "GET", "bearer " + tokens.IDToken, true, "uploader", "", nil, "", false},
		{"access token where id is required", "GET", "Bearer " + tokens.AccessToken, false, "", `error="invalid_token"`, nil, "", false},
		{"refresh token used as a bearer token", "GET", "Bearer " + tokens.RefreshToken, false, "", `error="invalid_token"`, nil, "", false},
		{"tampered", "GET", "Bearer " + tokens.IDToken[:len(tokens.IDToken)-4] + "AAAA", false, "", `error="invalid_token"`, nil, "", false},
		{"basic auth", "GET", "Basic YTpi", false, "", `Bearer realm=`, nil, "", false},
		{"no header", "GET", "", false, "", `Bearer realm=`, nil, "", false},
		{"CORS preflight", "OPTIONS", "", true, "", "", preflight, "", false},
		{"OPTIONS without preflight headers", "OPTIONS", "", false, "", `Bearer realm=`, nil, "", false},
		{"OPTIONS with Origin only", "OPTIONS", "", false, "", `Bearer realm=`, map[string]string{"Origin": "https://app.example.com"}, "", false},
		{"preflight headers with a body", "OPTIONS", "", false, "", `Bearer realm=`, preflight, "payload", false},
		{"preflight headers with a chunked body", "OPTIONS", "", false, "", `Bearer realm=`, preflight, "", true},
		{"OPTIONS with a valid token", "OPTIONS", "Bearer " + tokens.IDToken, true, "uploader", "", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			r := httptest.NewRequest(tt.method, "/x", body)
			if tt.chunked {
				r.ContentLength = -1
				r.TransferEncoding = []string{"chunked"}
			}
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			w := httptest.NewRecorder()
			u, ok, err := p.Authenticate(w, r)
			if err != nil {
				t.Fatalf("Authenticate error: %v", err)
			}
			if ok != tt.wantOK || u.Metadata["role"] != tt.wantRole {
				t.Errorf("ok=%v role=%q, want ok=%v role=%q", ok, u.Metadata["role"], tt.wantOK, tt.wantRole)
			}
			if ok && tt.auth != "" && (u.ID != user.Sub || u.Metadata["email"] != "a@example.com") {
				t.Errorf("user = %+v, want id %s", u, user.Sub)
			}
			if got := w.Header().Get("WWW-Authenticate"); !strings.Contains(got, tt.wantHeader) {
				t.Errorf("WWW-Authenticate = %q, want it to contain %q", got, tt.wantHeader)
			}
		})
	}
}
