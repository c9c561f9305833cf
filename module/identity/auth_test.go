package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
)

// newLocalAuth provisions an upload_auth handler with the local identity
// provider and one uploader, a@example.com with password "pw".
func newLocalAuth(t *testing.T, edit func(*Auth)) *Auth {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return newLocalAuthIn(t, ctx, edit)
}

// newLocalAuthIn is newLocalAuth in a given Caddy context (whose metrics
// registry the handler registers in).
func newLocalAuthIn(t *testing.T, ctx caddy.Context, edit func(*Auth)) *Auth {
	t.Helper()
	// Not t.TempDir: the verifier's background key refresh, stopped only
	// when ctx is cancelled after this test's other cleanups, may still be
	// writing the first key into keys/ when the directory is removed.
	dir, err := os.MkdirTemp("", "upload-auth-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 20 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), localidp.MinHashCost)
	users := fmt.Sprintf(`{"users":[{"email":"a@example.com","password_hash":%q,"groups":["uploader"]}]}`, hash)
	usersFile := filepath.Join(dir, "users.json")
	if err := os.WriteFile(usersFile, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &Auth{Identity: Identity{Local: &LocalIdentity{UsersFile: usersFile, KeysDir: filepath.Join(dir, "keys")}}}
	if edit != nil {
		edit(a)
	}
	if err := a.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() { _ = a.Cleanup() })
	if err := a.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return a
}

// Password checks are bounded for the process, not per handler: two sites
// (or the old and new config during a reload) share one gate.
func TestLoginGateIsSharedByHandlers(t *testing.T) {
	a := newLocalAuth(t, func(a *Auth) { a.LoginConcurrency = 3 })
	b := newLocalAuth(t, func(a *Auth) { a.LoginConcurrency = 3 })
	if a.gate != b.gate {
		t.Fatal("two handlers with login_concurrency 3 have separate gates")
	}
	if c := newLocalAuth(t, func(a *Auth) { a.LoginConcurrency = 1 }); c.gate == a.gate {
		t.Error("login_concurrency 1 shares the gate of 3")
	}
	if got := runtime.GOMAXPROCS(0); newLocalAuth(t, nil).gate.Size() != got {
		t.Errorf("default gate size is not GOMAXPROCS (%d)", got)
	}
}

// serve sends r through a and returns the response.
func serve(t *testing.T, a *Auth, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	if err := a.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return w
}

func loginRequestFrom(email, password, ip string) *http.Request {
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	r := httptest.NewRequest(http.MethodPost, "/auth/login", strings.NewReader(string(body)))
	r.Header.Set("Content-Type", "application/json")
	r.RemoteAddr = ip + ":4000"
	return r
}

func TestLoginHidesRoleARN(t *testing.T) {
	for _, expose := range []bool{false, true} {
		t.Run(fmt.Sprintf("expose_role_arn=%v", expose), func(t *testing.T) {
			a := newLocalAuth(t, func(a *Auth) {
				a.RoleARNs = map[string]string{"uploader": "arn:aws:iam::123456789012:role/Uploader"}
				a.ExposeRoleARN = expose
			})
			w := serve(t, a, loginRequestFrom("a@example.com", "pw", "192.0.2.40"))
			if w.Code != http.StatusOK {
				t.Fatalf("login: %d %s", w.Code, w.Body)
			}
			shown := strings.Contains(w.Body.String(), "arn:aws:iam::123456789012:role/Uploader")
			if shown != expose || strings.Contains(w.Body.String(), "roleArn") != expose {
				t.Errorf("ARN in the response: %v, want %v: %s", shown, expose, w.Body)
			}
		})
	}
}

func TestOptionsNeedsTokenUnlessPreflight(t *testing.T) {
	a := newLocalAuth(t, nil)
	preflight := map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"}
	tests := []struct {
		name          string
		header        map[string]string
		body          string
		unknownLength bool // without Content-Length
		proto         int  // ProtoMajor; 0 means 1
		want          int
	}{
		{"CORS preflight", preflight, "", false, 0, http.StatusNoContent},
		{"HTTP/3 CORS preflight of unknown length, ended", preflight, "", true, 3, http.StatusNoContent},
		{"HTTP/2 OPTIONS of unknown length (stream left open)", preflight, "", true, 2, http.StatusUnauthorized},
		{"bare OPTIONS", nil, "", false, 0, http.StatusUnauthorized},
		{"OPTIONS with a body", preflight, "smuggled", false, 0, http.StatusUnauthorized},
		{"HTTP/3 OPTIONS with a body of unknown length", preflight, "smuggled", true, 3, http.StatusUnauthorized},
		{"OPTIONS with Origin only", map[string]string{"Origin": "https://app.example.com"}, "", false, 0, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r *http.Request
			if tt.body != "" {
				r = httptest.NewRequest(http.MethodOptions, "/files/x", strings.NewReader(tt.body))
			} else {
				r = httptest.NewRequest(http.MethodOptions, "/files/x", nil)
			}
			if tt.unknownLength {
				r.ContentLength = -1
				r.Body = io.NopCloser(strings.NewReader(tt.body))
				if tt.proto != 3 {
					// A body that never ends: the check must not read it.
					r.Body = io.NopCloser(blockingReader{})
				}
			}
			if tt.proto != 0 {
				r.ProtoMajor = tt.proto
			}
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
			if w := serve(t, a, r); w.Code != tt.want {
				t.Errorf("status %d, want %d", w.Code, tt.want)
			}
		})
	}
}

// blockingReader is a request body whose client never sends anything.
type blockingReader struct{}

func (blockingReader) Read([]byte) (int, error) { select {} }

// An OPTIONS request of unknown length with a body and a valid token
// reaches the next handler with its body whole.
func TestOptionsBodyIsKeptForNextHandler(t *testing.T) {
	a := newLocalAuth(t, nil)
	w := serve(t, a, loginRequestFrom("a@example.com", "pw", "192.0.2.60"))
	var env struct {
		Data struct{ Token string } `json:"data"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Data.Token == "" {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	r := httptest.NewRequest(http.MethodOptions, "/files/x", nil)
	r.ProtoMajor = 3
	r.ContentLength = -1
	r.Body = io.NopCloser(strings.NewReader("the whole body"))
	r.Header.Set("Origin", "https://app.example.com")
	r.Header.Set("Access-Control-Request-Method", "PUT")
	r.Header.Set("Authorization", "Bearer "+env.Data.Token)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	var got string
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		b, _ := io.ReadAll(r.Body)
		got = string(b)
		return nil
	})
	if err := a.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	if got != "the whole body" {
		t.Errorf("next handler read %q", got)
	}
}

// Provisioning and validating the local identity provider writes nothing,
// so that `caddy validate` and `caddy adapt` leave the disk alone; the
// first JWKS request or login creates the key (and the first refresh the
// revocation directory).
func TestLocalKeysAreCreatedOnFirstUse(t *testing.T) {
	for _, tt := range []struct {
		name  string
		first *http.Request
	}{
		{"JWKS", httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil)},
		{"login", loginRequestFrom("a@example.com", "pw", "192.0.2.70")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var keysDir string
			a := newLocalAuth(t, func(a *Auth) {
				keysDir = a.Local.KeysDir
				if err := os.Mkdir(keysDir, 0o700); err != nil {
					t.Fatal(err)
				}
			})
			p := &Provider{Identity: Identity{Local: &LocalIdentity{UsersFile: a.Local.UsersFile, KeysDir: keysDir}}}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			if err := p.Provision(ctx); err != nil {
				t.Fatal(err)
			}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			if entries, _ := os.ReadDir(keysDir); len(entries) != 0 {
				t.Fatalf("provisioning wrote %v", entries)
			}
			if w := serve(t, a, tt.first); w.Code != http.StatusOK {
				t.Fatalf("first request: %d %s", w.Code, w.Body)
			}
			if files, _ := filepath.Glob(filepath.Join(keysDir, "*.jwk.json")); len(files) != 1 {
				t.Errorf("after the first request: key files %v", files)
			}
		})
	}
}

// A login API request is recorded once, like every request of the gateway:
// a request metric under its endpoint and one audit line (none for JWKS).
func TestLoginAPIRequestsAreRecordedOnce(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	a := newLocalAuthIn(t, ctx, nil)
	core, logs := observer.New(zap.InfoLevel)
	a.rec.Audit = zap.New(core)
	serve(t, a, loginRequestFrom("a@example.com", "pw", "192.0.2.1"))
	serve(t, a, loginRequestFrom("a@example.com", "wrong", "192.0.2.1"))
	serve(t, a, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))

	got := map[string]float64{}
	families, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "upload_gateway_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["endpoint"]+" "+labels["status"]] += m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"auth_login 200": 1, "auth_login 401": 1, "auth_jwks 200": 1}
	if !maps.Equal(got, want) {
		t.Errorf("requests_total by endpoint and status = %v, want %v", got, want)
	}
	var results []string
	for _, e := range logs.All() {
		results = append(results, fmt.Sprint(e.ContextMap()["action"], " ", e.ContextMap()["result"]))
	}
	if want := []string{"login ok", "login denied"}; !slices.Equal(results, want) {
		t.Errorf("audit lines %q, want %q", results, want)
	}
}

// session_cookie and allowed_origins are checked before the server starts.
func TestValidateSessionOptions(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Auth)
		wantErr string
	}{
		{"defaults", func(a *Auth) { a.SessionCookie = "ugw_session" }, ""},
		{"origins", func(a *Auth) { a.AllowedOrigins = []string{"https://app.example.com", "http://localhost:3000"} }, ""},
		{"bad cookie name", func(a *Auth) { a.SessionCookie = "my session" }, "session_cookie"},
		{"origin with a path", func(a *Auth) { a.AllowedOrigins = []string{"https://app.example.com/upload"} }, "allowed_origins"},
		{"wildcard origin", func(a *Auth) { a.AllowedOrigins = []string{"*"} }, "allowed_origins"},
		{"revoke_path is logout_path, no cookies", func(a *Auth) {
			a.Local, a.RevokePath, a.LogoutPath = &LocalIdentity{}, "/auth/logout", "/auth/logout"
		}, ""},
		{"revoke_path is logout_path, with cookies", func(a *Auth) {
			a.Local, a.RevokePath, a.LogoutPath, a.SessionCookie = &LocalIdentity{}, "/auth/logout", "/auth/logout", "s"
		}, "revoke_path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Auth{Identity: Identity{Region: "eu-west-1", UserPoolID: "eu-west-1_x", ClientIDs: []string{"c"}}}
			tt.edit(a)
			err := a.Validate()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate = %v, want an error about %q", err, tt.wantErr)
			}
		})
	}
}
