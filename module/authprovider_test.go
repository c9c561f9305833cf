package module

import (
	"context"
	"fmt"
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
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
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
	tests := []struct {
		name       string
		method     string
		auth       string
		wantOK     bool
		wantRole   string
		wantHeader string
	}{
		{"valid id token", "GET", "Bearer " + tokens.IDToken, true, "uploader", ""},
		{"lowercase scheme", "GET", "bearer " + tokens.IDToken, true, "uploader", ""},
		{"access token where id is required", "GET", "Bearer " + tokens.AccessToken, false, "", `error="invalid_token"`},
		{"refresh token used as a bearer token", "GET", "Bearer " + tokens.RefreshToken, false, "", `error="invalid_token"`},
		{"tampered", "GET", "Bearer " + tokens.IDToken[:len(tokens.IDToken)-4] + "AAAA", false, "", `error="invalid_token"`},
		{"basic auth", "GET", "Basic YTpi", false, "", `Bearer realm=`},
		{"no header", "GET", "", false, "", `Bearer realm=`},
		{"CORS preflight", "OPTIONS", "", true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/x", nil)
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
			if ok && tt.method != "OPTIONS" && (u.ID != user.Sub || u.Metadata["email"] != "a@example.com") {
				t.Errorf("user = %+v, want id %s", u, user.Sub)
			}
			if got := w.Header().Get("WWW-Authenticate"); !strings.Contains(got, tt.wantHeader) {
				t.Errorf("WWW-Authenticate = %q, want it to contain %q", got, tt.wantHeader)
			}
		})
	}
}
