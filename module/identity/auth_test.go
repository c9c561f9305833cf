package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
	"github.com/caddy-upload-gateway/upload-gateway/internal/ratelimit"
)

// newLocalAuth provisions an upload_auth handler with the local identity
// provider and one uploader, a@example.com with password "pw".
func newLocalAuth(t *testing.T, edit func(*Auth)) *Auth {
	t.Helper()
	dir := t.TempDir()
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
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
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
	if a.bcrypt != b.bcrypt {
		t.Fatal("two handlers with login_concurrency 3 have separate gates")
	}
	if c := newLocalAuth(t, func(a *Auth) { a.LoginConcurrency = 1 }); c.bcrypt == a.bcrypt {
		t.Error("login_concurrency 1 shares the gate of 3")
	}
	if got := runtime.GOMAXPROCS(0); newLocalAuth(t, nil).bcrypt.Size() != got {
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

func errorCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var env struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &env)
	return env.Error.Code
}

// An email longer than any real one is refused before a limiter stores it.
func TestLoginRefusesHugeEmailBeforeLimiting(t *testing.T) {
	a := newLocalAuth(t, nil)
	huge := strings.Repeat("a", 16<<10-100) + "@example.com"
	for _, tt := range []struct {
		name, email string
		want        int
	}{
		{"255 bytes", strings.Repeat("a", 255-len("@example.com")) + "@example.com", http.StatusBadRequest},
		{"16 KiB", huge, http.StatusBadRequest},
		{"254 bytes is still a login attempt", strings.Repeat("a", 254-len("@example.com")) + "@example.com", http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := a.pairLimit.Len() + a.accountLimit.Len()
			w := serve(t, a, loginRequestFrom(tt.email, "pw", "192.0.2.10"))
			if w.Code != tt.want {
				t.Fatalf("status %d (%s), want %d", w.Code, w.Body, tt.want)
			}
			stored := a.pairLimit.Len() + a.accountLimit.Len() - before
			if tt.want == http.StatusBadRequest && stored != 0 {
				t.Errorf("a refused email made %d limiter entries", stored)
			}
		})
	}
}

// Failing attempts from one client use up that client's allowance for the
// account, not the account's: the user still signs in from elsewhere.
func TestLoginLockoutIsPerClient(t *testing.T) {
	a := newLocalAuth(t, func(a *Auth) { a.LoginPerAccount = 3; a.LoginPerAccountTotal = 10 })
	limited := 0
	for range 20 {
		w := serve(t, a, loginRequestFrom("a@example.com", "wrong", "198.51.100.66"))
		if w.Code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 17 {
		t.Errorf("%d of 20 attempts from one client limited, want 17 (after 3)", limited)
	}
	if w := serve(t, a, loginRequestFrom("a@example.com", "pw", "192.0.2.20")); w.Code != http.StatusOK {
		t.Fatalf("the user from another client: %d %s", w.Code, w.Body)
	}
}

// The per-account bound still holds across many clients.
func TestLoginPerAccountTotal(t *testing.T) {
	a := newLocalAuth(t, func(a *Auth) { a.LoginPerAccount = 2; a.LoginPerAccountTotal = 4 })
	codes := map[int]int{}
	for i := range 10 {
		w := serve(t, a, loginRequestFrom("a@example.com", "wrong", fmt.Sprintf("198.51.100.%d", i+1)))
		codes[w.Code]++
	}
	if codes[http.StatusUnauthorized] != 4 || codes[http.StatusTooManyRequests] != 6 {
		t.Errorf("10 clients, one attempt each: %v, want 4 checked and 6 limited", codes)
	}
}

// Addresses of one IPv6 /64 share the per-client allowance.
func TestLoginIPv6ClientsLimitedPerSlash64(t *testing.T) {
	a := newLocalAuth(t, func(a *Auth) { a.LoginPerIP = 3 })
	limited := 0
	for i := range 10 {
		w := serve(t, a, loginRequestFrom(fmt.Sprintf("u%d@example.com", i), "wrong", fmt.Sprintf("[2001:db8:5:6::%x]", i+1)))
		if w.Code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 7 {
		t.Errorf("%d of 10 attempts from one /64 limited, want 7", limited)
	}
}

// When every password check slot is busy, a login is answered at once
// with 503 and Retry-After.
func TestLoginBusyAnswers503(t *testing.T) {
	a := newLocalAuth(t, func(a *Auth) { a.LoginConcurrency = 1 })
	if a.bcrypt.Size() != 1 {
		t.Fatalf("login_concurrency 1 gave %d slots", a.bcrypt.Size())
	}
	// One slot, no room to wait: take the slot.
	a.bcrypt = ratelimit.NewGate(1, 0, 0)
	release, err := a.bcrypt.Enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	w := serve(t, a, loginRequestFrom("a@example.com", "pw", "192.0.2.30"))
	if w.Code != http.StatusServiceUnavailable || errorCode(t, w) != "LOGIN_BUSY" || w.Header().Get("Retry-After") == "" {
		t.Errorf("login while busy: %d %s Retry-After %q", w.Code, w.Body, w.Header().Get("Retry-After"))
	}
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
