package authservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/caddy-upload-gateway/upload-gateway/internal/cognito"
	"github.com/caddy-upload-gateway/upload-gateway/internal/jwtauth"
	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
	"github.com/caddy-upload-gateway/upload-gateway/internal/ratelimit"
)

// fakeLocal is a local provider with one user, a@example.com / "pw", whose
// refresh tokens rotate: "r0" → "r1" → …; a used one revokes the session.
type fakeLocal struct {
	mu      sync.Mutex
	err     error // returned by every call when set
	next    int   // number of the current refresh token
	revoked bool
	logins  int
}

func (f *fakeLocal) Login(_ context.Context, email, password string) (*localidp.Tokens, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logins++
	if f.err != nil {
		return nil, f.err
	}
	if email != "a@example.com" || password != "pw" {
		return nil, localidp.ErrInvalidCredentials
	}
	return &localidp.Tokens{IDToken: "id:" + email, AccessToken: "access", RefreshToken: fmt.Sprintf("r%d", f.next), ExpiresIn: 3600}, nil
}

func (f *fakeLocal) Refresh(_ context.Context, token string) (*localidp.Tokens, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if f.revoked || token != fmt.Sprintf("r%d", f.next) {
		f.revoked = true
		return nil, fmt.Errorf("%w: used before", localidp.ErrInvalidRefreshToken)
	}
	f.next++
	return &localidp.Tokens{IDToken: "id:a@example.com", AccessToken: "access", RefreshToken: fmt.Sprintf("r%d", f.next), ExpiresIn: 3600}, nil
}

func (f *fakeLocal) Revoke(_ context.Context, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.revoked = true
	return nil
}

func (f *fakeLocal) JWKS(context.Context) ([]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	return []byte(`{"keys":[]}`), nil
}

// fakeCognito answers every call with err, or tokens.
type fakeCognito struct{ err error }

func (f fakeCognito) Login(_ context.Context, email, _ string) (*cognito.Tokens, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &cognito.Tokens{IDToken: "id:" + email, AccessToken: "access", RefreshToken: "cognito-refresh", ExpiresIn: 3600}, nil
}

func (f fakeCognito) Refresh(_ context.Context, _, username string) (*cognito.Tokens, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &cognito.Tokens{IDToken: "id:" + username, AccessToken: "access", ExpiresIn: 3600}, nil
}

// fakeVerifier reads "id:<email>" tokens of uploaders.
type fakeVerifier struct{}

func (fakeVerifier) VerifyTokenUse(_ context.Context, token, use string) (*jwtauth.Claims, error) {
	email, ok := strings.CutPrefix(token, "id:")
	if !ok || use != jwtauth.TokenUseID {
		return nil, jwtauth.ErrTokenInvalid
	}
	return &jwtauth.Claims{Subject: "sub-" + email, Username: "user-" + email, Email: email, All: map[string]any{"cognito:groups": []any{"uploader"}}}, nil
}

// env is a service under test and the outcomes it reported.
type env struct {
	svc      *Service
	local    *fakeLocal
	mu       sync.Mutex
	outcomes []Outcome
}

func newEnv(t *testing.T, edit func(*Config)) *env {
	t.Helper()
	e := &env{local: &fakeLocal{}}
	cfg := Config{
		Local:       e.local,
		Verifier:    fakeVerifier{},
		LoginPath:   "/auth/login",
		RefreshPath: "/auth/refresh",
		RevokePath:  "/auth/revoke",
		JWKSPath:    "/.well-known/jwks.json",
		Report: func(_ *http.Request, o Outcome) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.outcomes = append(e.outcomes, o)
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	return e
}

// perMinute is a limiter of n attempts a minute, as the gateway makes.
func perMinute(n int) *ratelimit.Limiter {
	return ratelimit.New(rate.Limit(float64(n)/60), n, 1000)
}

// response is a decoded envelope.
type response struct {
	status     int
	retryAfter string
	Success    bool `json:"success"`
	Data       struct {
		Response
		Revoked bool `json:"revoked"`
	} `json:"data"`
	Error struct{ Code, Message string } `json:"error"`
}

// post sends body as JSON from ip to path.
func (e *env) post(t *testing.T, path, ip string, body any) response {
	t.Helper()
	b, _ := json.Marshal(body)
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(b)))
	r.Header.Set("Content-Type", "application/json")
	r.RemoteAddr = ip + ":4000"
	return e.do(t, r)
}

func (e *env) do(t *testing.T, r *http.Request) response {
	t.Helper()
	if !e.svc.Handles(r) {
		t.Fatalf("%s %s is not handled", r.Method, r.URL.Path)
	}
	w := httptest.NewRecorder()
	e.svc.ServeHTTP(w, r)
	var res response
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Fatalf("%s: %v", w.Body, err)
	}
	res.status, res.retryAfter = w.Code, w.Header().Get("Retry-After")
	return res
}

func (e *env) last(t *testing.T) Outcome {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.outcomes) == 0 {
		t.Fatal("no outcome reported")
	}
	return e.outcomes[len(e.outcomes)-1]
}

func login(email, password string) map[string]string {
	return map[string]string{"email": email, "password": password}
}

// Every error a provider or the service itself produces gets its status,
// code and outcome from one table.
func TestErrorsMapToStatusAndCode(t *testing.T) {
	tests := []struct {
		name       string
		cognito    bool  // Cognito instead of the local provider
		err        error // the provider's answer
		body       any   // default: a valid login
		wantStatus int
		wantCode   string
		wantResult string
		logged     bool // Outcome.Err set
	}{
		{"ok", false, nil, nil, 200, "", "ok", false},
		{"wrong password", false, nil, login("a@example.com", "nope"), 401, "INVALID_CREDENTIALS", "denied", false},
		{"no password", false, nil, login("a@example.com", ""), 400, "BAD_REQUEST", "rejected", false},
		{"not JSON", false, nil, "{", 400, "BAD_REQUEST", "rejected", false},
		{"email too long", false, nil, login(strings.Repeat("a", 255-len("@example.com"))+"@example.com", "pw"), 400, "BAD_REQUEST", "rejected", false},
		{"client went away", false, context.Canceled, nil, 499, "CLIENT_CLOSED_REQUEST", "denied", false},
		{"key store failed", false, errors.New("disk full"), nil, 502, "IDENTITY_PROVIDER_ERROR", "failed", true},
		{"cognito: wrong password", true, cognito.ErrInvalidCredentials, nil, 401, "INVALID_CREDENTIALS", "denied", false},
		{"cognito: challenge", true, &cognito.ChallengeError{Name: "NEW_PASSWORD_REQUIRED"}, nil, 403, "NEW_PASSWORD_REQUIRED", "denied", false},
		{"cognito: not confirmed", true, cognito.ErrUserNotConfirmed, nil, 403, "USER_NOT_CONFIRMED", "denied", false},
		{"cognito: reset", true, cognito.ErrPasswordResetRequired, nil, 403, "PASSWORD_RESET_REQUIRED", "denied", false},
		{"cognito: throttled", true, cognito.ErrTooManyRequests, nil, 429, "TOO_MANY_ATTEMPTS", "rate_limited", false},
		{"cognito: down", true, fmt.Errorf("%w: 503", cognito.ErrUnavailable), nil, 502, "IDENTITY_PROVIDER_UNAVAILABLE", "failed", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) {
				if tt.cognito {
					c.Local, c.Cognito = nil, fakeCognito{err: tt.err}
				}
			})
			e.local.err = tt.err
			body := tt.body
			if body == nil {
				body = login("A@Example.com ", "pw")
			}
			res := e.post(t, "/auth/login", "192.0.2.1", body)
			if res.status != tt.wantStatus || res.Error.Code != tt.wantCode || res.Success != (tt.wantStatus == 200) {
				t.Fatalf("got %d %q (success %v), want %d %q", res.status, res.Error.Code, res.Success, tt.wantStatus, tt.wantCode)
			}
			o := e.last(t)
			if o.Action != ActionLogin || o.Status != tt.wantStatus || o.Code != tt.wantCode || o.Result != tt.wantResult || (o.Err != nil) != tt.logged {
				t.Errorf("outcome %+v, want status %d code %q result %s logged %v", o, tt.wantStatus, tt.wantCode, tt.wantResult, tt.logged)
			}
			if tt.wantStatus == 200 {
				u := res.Data.User
				if res.Data.Token != "id:a@example.com" || u.Email != "a@example.com" || u.Role.Role != "uploader" || res.Data.TokenType != "Bearer" || o.Account != "a@example.com" {
					t.Errorf("response %+v, outcome %+v", res.Data, o)
				}
			}
		})
	}
}

// A body that is not JSON is refused before anything else.
func TestNotJSONIs415(t *testing.T) {
	e := newEnv(t, nil)
	r := httptest.NewRequest(http.MethodPost, "/auth/login", strings.NewReader("email=a"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res := e.do(t, r); res.status != 415 || res.Error.Code != "UNSUPPORTED_MEDIA_TYPE" {
		t.Errorf("got %d %s", res.status, res.Error.Code)
	}
}

// An email longer than any real one is refused before a limiter stores it.
func TestHugeEmailRefusedBeforeLimiting(t *testing.T) {
	pair, account := perMinute(5), perMinute(30)
	e := newEnv(t, func(c *Config) { c.PerAccountClient, c.PerAccount = pair, account })
	for _, tt := range []struct {
		name, email string
		want        int
	}{
		{"255 bytes", strings.Repeat("a", 255-len("@example.com")) + "@example.com", 400},
		{"16 KiB", strings.Repeat("a", 16<<10-100) + "@example.com", 400},
		{"254 bytes is still a login attempt", strings.Repeat("a", 254-len("@example.com")) + "@example.com", 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := pair.Len() + account.Len()
			if res := e.post(t, "/auth/login", "192.0.2.10", login(tt.email, "pw")); res.status != tt.want {
				t.Fatalf("status %d, want %d", res.status, tt.want)
			}
			if stored := pair.Len() + account.Len() - before; tt.want == 400 && stored != 0 {
				t.Errorf("a refused email made %d limiter entries", stored)
			}
		})
	}
}

// The three login limits: failing attempts from one client use up that
// client's allowance for the account, not the account's; the per-account
// bound holds across clients; an IPv6 /64 is one client.
func TestRateLimits(t *testing.T) {
	tests := []struct {
		name                         string
		perClient, perPair, perTotal int
		email                        func(i int) string
		ip                           func(i int) string
		attempts, wantLimited        int
	}{
		{"lockout is per client", 0, 3, 10, func(int) string { return "a@example.com" }, func(int) string { return "198.51.100.66" }, 20, 17},
		{"per account over many clients", 0, 2, 4, func(int) string { return "a@example.com" }, func(i int) string { return fmt.Sprintf("198.51.100.%d", i+1) }, 10, 6},
		{"IPv6 per /64", 3, 0, 0, func(i int) string { return fmt.Sprintf("u%d@example.com", i) }, func(i int) string { return fmt.Sprintf("[2001:db8:5:6::%x]", i+1) }, 10, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) {
				if tt.perClient > 0 {
					c.PerClient = perMinute(tt.perClient)
				}
				if tt.perPair > 0 {
					c.PerAccountClient, c.PerAccount = perMinute(tt.perPair), perMinute(tt.perTotal)
				}
			})
			limited := 0
			for i := range tt.attempts {
				res := e.post(t, "/auth/login", tt.ip(i), login(tt.email(i), "wrong"))
				if res.status == 429 {
					limited++
					if res.retryAfter == "" || res.Error.Code != "TOO_MANY_ATTEMPTS" || e.last(t).Result != "rate_limited" {
						t.Fatalf("limited without Retry-After or code: %+v", res)
					}
				}
			}
			if limited != tt.wantLimited {
				t.Errorf("%d of %d attempts limited, want %d", limited, tt.attempts, tt.wantLimited)
			}
		})
	}
	// The user still signs in from another client after the lockout.
	e := newEnv(t, func(c *Config) { c.PerAccountClient, c.PerAccount = perMinute(3), perMinute(10) })
	for range 5 {
		e.post(t, "/auth/login", "198.51.100.66", login("a@example.com", "wrong"))
	}
	if res := e.post(t, "/auth/login", "192.0.2.20", login("a@example.com", "pw")); res.status != 200 {
		t.Errorf("the user from another client: %d %s", res.status, res.Error.Code)
	}
}

// When every password check slot is busy, a login is answered at once with
// 503 and Retry-After, charged to the client but not to the account, and
// the password is not checked.
func TestGateBusy(t *testing.T) {
	gate := ratelimit.NewGate(1, 0, 0)
	account := perMinute(1)
	e := newEnv(t, func(c *Config) { c.Gate, c.PerAccount = gate, account })
	release, err := gate.Enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res := e.post(t, "/auth/login", "192.0.2.30", login("a@example.com", "pw"))
	if res.status != 503 || res.Error.Code != "LOGIN_BUSY" || res.retryAfter != "1" {
		t.Errorf("login while busy: %d %s Retry-After %q", res.status, res.Error.Code, res.retryAfter)
	}
	if o := e.last(t); o.Result != "busy" || o.Err != nil {
		t.Errorf("outcome %+v, want busy and not logged", o)
	}
	if e.local.logins != 0 || account.Len() != 0 {
		t.Errorf("busy login checked the password (%d) or charged the account (%d)", e.local.logins, account.Len())
	}
	release()
	if res := e.post(t, "/auth/login", "192.0.2.30", login("a@example.com", "pw")); res.status != 200 {
		t.Errorf("login after the slot was freed: %d %s", res.status, res.Error.Code)
	}
}

// Refresh rotates the local provider's refresh token; a used one is
// refused; revoke ends the session. Cognito's refresh echoes the token
// sent, since Cognito does not rotate it.
func TestRefreshRotationAndRevoke(t *testing.T) {
	e := newEnv(t, nil)
	steps := []struct {
		path, token string
		wantStatus  int
		wantCode    string
		wantRefresh string
	}{
		{"/auth/refresh", "r0", 200, "", "r1"},
		{"/auth/refresh", "r1", 200, "", "r2"},
		{"/auth/refresh", "r1", 401, "INVALID_TOKEN", ""}, // used before: session revoked
		{"/auth/refresh", "r2", 401, "INVALID_TOKEN", ""},
		{"/auth/refresh", "", 400, "BAD_REQUEST", ""},
		{"/auth/revoke", "", 400, "BAD_REQUEST", ""},
		{"/auth/revoke", "r2", 200, "", ""},
	}
	for i, s := range steps {
		res := e.post(t, s.path, "192.0.2.50", map[string]string{"refreshToken": s.token})
		if res.status != s.wantStatus || res.Error.Code != s.wantCode || res.Data.RefreshToken != s.wantRefresh {
			t.Fatalf("step %d %s %q: %d %q refresh %q, want %d %q %q", i, s.path, s.token, res.status, res.Error.Code, res.Data.RefreshToken, s.wantStatus, s.wantCode, s.wantRefresh)
		}
		if s.path == "/auth/revoke" && s.wantStatus == 200 && (!res.Data.Revoked || e.last(t).Action != ActionRevoke) {
			t.Errorf("revoke: %+v, outcome %+v", res, e.last(t))
		}
	}

	c := newEnv(t, func(c *Config) { c.Local, c.Cognito = nil, fakeCognito{} })
	res := c.post(t, "/auth/refresh", "192.0.2.50", map[string]string{"refreshToken": "cognito-refresh", "email": "b@example.com"})
	if res.status != 200 || res.Data.RefreshToken != "cognito-refresh" || res.Data.User.Email != "b@example.com" {
		t.Errorf("Cognito refresh: %d %+v", res.status, res.Data)
	}
}

// Routes exist only with their method, only when configured, and revoke
// and JWKS only with the local provider.
func TestRoutes(t *testing.T) {
	local := newEnv(t, func(c *Config) { c.RefreshPath = "" })
	cog := newEnv(t, func(c *Config) { c.Local, c.Cognito = nil, fakeCognito{} })
	for _, tt := range []struct {
		e            *env
		method, path string
		want         bool
	}{
		{local, "POST", "/auth/login", true},
		{local, "GET", "/auth/login", false},
		{local, "POST", "/auth/refresh", false},
		{local, "POST", "/auth/revoke", true},
		{local, "GET", "/.well-known/jwks.json", true},
		{local, "POST", "/.well-known/jwks.json", false},
		{cog, "POST", "/auth/refresh", true},
		{cog, "POST", "/auth/revoke", false},
		{cog, "GET", "/.well-known/jwks.json", false},
		{local, "POST", "/auth/login/", false},
	} {
		if got := tt.e.svc.Handles(httptest.NewRequest(tt.method, tt.path, nil)); got != tt.want {
			t.Errorf("%s %s handled: %v, want %v", tt.method, tt.path, got, tt.want)
		}
	}
}

// The JWKS route serves the provider's document, or a JSON 500 when the
// keys cannot be read.
func TestJWKS(t *testing.T) {
	e := newEnv(t, nil)
	w := httptest.NewRecorder()
	e.svc.ServeHTTP(w, httptest.NewRequest("GET", "/.well-known/jwks.json", nil))
	if w.Code != 200 || w.Body.String() != `{"keys":[]}` || w.Header().Get("Cache-Control") == "" {
		t.Errorf("JWKS: %d %q %v", w.Code, w.Body, w.Header())
	}
	e.local.err = errors.New("permission denied")
	if res := e.do(t, httptest.NewRequest("GET", "/.well-known/jwks.json", nil)); res.status != 500 || res.Error.Code != "KEYS_UNAVAILABLE" || e.last(t).Err == nil {
		t.Errorf("JWKS with unreadable keys: %d %s, outcome %+v", res.status, res.Error.Code, e.last(t))
	}
}

// Role ARNs appear only when configured, and expiresAt follows expiresIn.
func TestResponseDescribesUser(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, arns := range []map[string]string{nil, {"uploader": "arn:aws:iam::123456789012:role/Uploader"}} {
		e := newEnv(t, func(c *Config) { c.RoleARNs = arns; c.AccessToken = arns != nil })
		e.svc.now = func() time.Time { return now }
		res := e.post(t, "/auth/login", "192.0.2.40", login("a@example.com", "pw"))
		if res.status != 200 || res.Data.User.Role.RoleARN != arns["uploader"] || res.Data.ExpiresAt != "2026-01-02T04:04:05Z" {
			t.Errorf("ARNs %v: %+v", arns, res.Data)
		}
		if want := map[bool]string{false: "id:a@example.com", true: "access"}[arns != nil]; res.Data.Token != want {
			t.Errorf("token %q, want %q", res.Data.Token, want)
		}
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no provider":   {Verifier: fakeVerifier{}},
		"two providers": {Verifier: fakeVerifier{}, Local: &fakeLocal{}, Cognito: fakeCognito{}},
		"no verifier":   {Local: &fakeLocal{}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
