//go:build integration

package integration_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
)

// An operator who leaves the users file or the signing keys open to other
// local users gets a gateway that refuses to start, with an error that
// names the file and the fix, as ssh does with an unprotected key.
func TestLocalIdPRefusesInsecurePermissionsAtStartup(t *testing.T) {
	tests := []struct {
		name    string
		spoil   func(t *testing.T, idp localIdP)
		wantLog []string
	}{
		{
			name: "users file writable by everyone",
			spoil: func(t *testing.T, idp localIdP) {
				chmod(t, idp.usersFile, 0o666)
			},
			wantLog: []string{"users file", "users.json is writable by group and others (mode 0666)", "chmod 0644"},
		},
		{
			name: "key directory writable by its group",
			spoil: func(t *testing.T, idp localIdP) {
				if err := os.Mkdir(idp.keysDir, 0o700); err != nil {
					t.Fatal(err)
				}
				chmod(t, idp.keysDir, 0o770)
			},
			wantLog: []string{"key directory", "is writable by its group (mode 0770)", "chmod 0750"},
		},
		{
			name: "private key readable by everyone",
			spoil: func(t *testing.T, idp localIdP) {
				kid, err := localidp.RotateDir(idp.keysDir)
				if err != nil {
					t.Fatal(err)
				}
				chmod(t, filepath.Join(idp.keysDir, kid+".jwk.json"), 0o644)
			},
			wantLog: []string{"private key file", "is readable by group and others (mode 0644)", "chmod 0600"},
		},
		{
			name: "password hash too cheap",
			spoil: func(t *testing.T, idp localIdP) {
				cheap := `{"users":[{"email":"edge@example.com",
					"password_hash":"$2a$04$2lENMgATNshIo1HnYPY5jeLkBUxeLmV17Q3KSFOaXcKrjs6siRXui"}]}`
				if err := os.WriteFile(idp.usersFile, []byte(cheap), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantLog: []string{"user 1 (edge@example.com): password_hash has bcrypt cost 4; accepted costs are 10 to 14"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idp := newLocalIdP(t, idpUser{email: "edge@example.com", password: "edge-password"})
			tt.spoil(t, idp)
			gw, err := env.StartGateway(harness.GatewayConfig{Site: idp.site(nil, `respond "hello" 200`)})
			if err == nil {
				gw.Stop()
				t.Fatal("the gateway started")
			}
			for _, want := range tt.wantLog {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("start-up error does not say %q:\n%v", want, err)
				}
			}
		})
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// refresh posts a refresh token to the gateway.
func refresh(t *testing.T, gw *harness.Gateway, token string) loginResult {
	t.Helper()
	return postJSON(t, gw.Client, gw.URL+"/auth/refresh", map[string]string{"refreshToken": token})
}

// A user's refresh token works once: each refresh hands out a new one and
// the old one stops working, on every instance sharing the key directory,
// once reuse_grace (here 2s) has passed; within it, two tabs renewing at
// once both get tokens. When a used token turns up again later (someone
// copied it), the session ends for everyone holding it. The user can sign out, and the operator can end
// all of a user's sessions by raising token_generation in the users file.
func TestLocalIdPRefreshTokensRotateAndRevoke(t *testing.T) {
	prefix := testPrefix(t)
	user := idpUser{email: "edge@example.com", password: "edge-password", groups: []string{"uploader"}}
	idp := newLocalIdP(t, user)
	site := idp.siteWith([]string{"reuse_grace 2s"}, nil, gatewayOpts{prefix: prefix, lines: []string{"allowed_roles uploader"}}.block())
	gw := startGatewayWith(t, harness.GatewayConfig{Site: site})
	// A second instance sharing the users file and the key directory.
	other := startGatewayWith(t, harness.GatewayConfig{Site: site})

	signIn := func() string {
		t.Helper()
		r := login(t, gw.Client, gw.URL, user.email, user.password)
		if r.status != http.StatusOK || r.body.Data.RefreshToken == "" {
			t.Fatalf("login: %d %+v", r.status, r.body.Error)
		}
		return r.body.Data.RefreshToken
	}
	refused := func(label string, r loginResult) {
		t.Helper()
		if r.status != http.StatusUnauthorized || r.body.Error.Code != "INVALID_TOKEN" {
			t.Errorf("%s: %d %+v, want 401 INVALID_TOKEN", label, r.status, r.body.Error)
		}
	}

	t.Run("a refresh hands out a new refresh token and the old one stops working", func(t *testing.T) {
		first := signIn()
		second := refresh(t, gw, first)
		if second.status != http.StatusOK || second.body.Data.Token == "" {
			t.Fatalf("refresh: %d %+v", second.status, second.body.Error)
		}
		next := second.body.Data.RefreshToken
		if next == "" || next == first {
			t.Fatalf("the refresh did not rotate the refresh token")
		}
		// A second tab renewing with the same token at once, at the other
		// instance, is within reuse_grace: it gets tokens of the session.
		if tab2 := refresh(t, other, first); tab2.status != http.StatusOK || tab2.body.Data.RefreshToken == next {
			t.Errorf("second tab's refresh within reuse_grace: %d %+v", tab2.status, tab2.body.Error)
		}
		resp := putWithToken(t, gw.Client, gw.URL+"/after-refresh.txt", second.body.Data.Token)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("upload with the refreshed token: %d", resp.StatusCode)
		}
		// The other instance agrees that the rotated token is current...
		third := refresh(t, other, next)
		if third.status != http.StatusOK {
			t.Fatalf("refresh with the rotated token at the other instance: %d %+v", third.status, third.body.Error)
		}
		// ...and, past reuse_grace, that the first one is used up. Its
		// replay ends the session: the newest token, which a thief could
		// hold as well, stops too.
		time.Sleep(2100 * time.Millisecond)
		refused("the used token replayed at the other instance", refresh(t, other, first))
		refused("the newest token after a replay", refresh(t, gw, third.body.Data.RefreshToken))
	})

	t.Run("signing out ends the session", func(t *testing.T) {
		token := refresh(t, gw, signIn()).body.Data.RefreshToken
		r := postJSON(t, gw.Client, gw.URL+"/auth/revoke", map[string]string{"refreshToken": token})
		if r.status != http.StatusOK || !r.body.Success {
			t.Fatalf("revoke: %d %+v", r.status, r.body.Error)
		}
		refused("refresh after sign-out", refresh(t, other, token))
		forged := postJSON(t, gw.Client, gw.URL+"/auth/revoke", map[string]string{"refreshToken": "not-a-token"})
		if forged.status != http.StatusUnauthorized {
			t.Errorf("revoke of a forged token: %d, want 401", forged.status)
		}
	})

	t.Run("raising token_generation ends every session of the user", func(t *testing.T) {
		a, b := signIn(), signIn()
		user.generation = 1
		writeUsersFile(t, idp.usersFile, user)
		time.Sleep(1100 * time.Millisecond) // the users file is looked at at most once a second
		refused("first session", refresh(t, gw, a))
		refused("second session, at the other instance", refresh(t, other, b))
		// Signing in again works, and so does its refresh.
		if r := refresh(t, gw, signIn()); r.status != http.StatusOK {
			t.Errorf("refresh of a new sign-in: %d %+v", r.status, r.body.Error)
		}
	})
}
