package authservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-upload-gateway/upload-gateway/internal/cognito"
	"github.com/caddy-upload-gateway/upload-gateway/internal/csrf"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
)

// withCookies configures the service's browser session as the gateway
// does: cookies, the CSRF check, and the session route.
func withCookies(name string, refreshMaxAge time.Duration) func(*Config) {
	return func(c *Config) {
		policy, _ := csrf.New([]string{"https://app.example.com"})
		c.Cookies = &Cookies{Name: name, RefreshMaxAge: refreshMaxAge}
		c.CheckOrigin = policy.Check
		c.LogoutPath = "/auth/logout"
		c.SessionPath = "/auth/session"
		c.Authenticate = func(r *http.Request) (*Principal, error) {
			ck, err := r.Cookie(c.Cookies.SessionName())
			if err != nil {
				return nil, ErrNoToken
			}
			email, ok := strings.CutPrefix(ck.Value, "id:")
			if !ok {
				return nil, errors.New("bad token")
			}
			return &Principal{ID: "sub-" + email, Email: email, Role: roles.Uploader}, nil
		}
	}
}

// newRequest builds a request to path of the service at http://example.com
// (httptest's host), with a JSON body unless body is "", and headers.
func newRequest(method, path, body string, header map[string]string, cookies ...*http.Cookie) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	for _, c := range cookies {
		r.AddCookie(c)
	}
	r.RemoteAddr = "192.0.2.1:4000"
	return r
}

// serveRaw serves r and returns the recorder.
func (e *env) serveRaw(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.svc.ServeHTTP(w, r)
	return w
}

// setCookies returns the Set-Cookie lines of w.
func setCookies(w *httptest.ResponseRecorder) []string { return w.Result().Header.Values("Set-Cookie") }

// cookieNamed returns the cookie name (with path) w sets, or nil.
func cookieNamed(w *httptest.ResponseRecorder, name, path string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name && c.Path == path {
			return c
		}
	}
	return nil
}

const loginBody = `{"email":"a@example.com","password":"pw"}`

// Sign-in sets the session cookie (the token, for the token's lifetime) and
// the refresh cookie, for the refresh and sign-out routes only; every
// cookie is HttpOnly, Secure and SameSite=Strict.
func TestLoginSetsSessionCookies(t *testing.T) {
	tests := []struct {
		name          string
		cookie        string
		refreshMaxAge time.Duration
		want          []string
	}{
		{"default name", "", 720 * time.Hour, []string{
			"ugw_session=id:a@example.com; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Strict",
			"ugw_session_refresh=dXNlci1hQGV4YW1wbGUuY29t.r0; Path=/auth/refresh; Max-Age=2592000; HttpOnly; Secure; SameSite=Strict",
			"ugw_session_refresh=dXNlci1hQGV4YW1wbGUuY29t.r0; Path=/auth/logout; Max-Age=2592000; HttpOnly; Secure; SameSite=Strict",
		}},
		{"own name, browser-session refresh cookie", "sid", 0, []string{
			"sid=id:a@example.com; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Strict",
			"sid_refresh=dXNlci1hQGV4YW1wbGUuY29t.r0; Path=/auth/refresh; HttpOnly; Secure; SameSite=Strict",
			"sid_refresh=dXNlci1hQGV4YW1wbGUuY29t.r0; Path=/auth/logout; HttpOnly; Secure; SameSite=Strict",
		}},
		{"__Host- name", "__Host-s", time.Hour, []string{
			"__Host-s=id:a@example.com; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Strict",
			"__Secure-s_refresh=dXNlci1hQGV4YW1wbGUuY29t.r0; Path=/auth/refresh; Max-Age=3600; HttpOnly; Secure; SameSite=Strict",
			"__Secure-s_refresh=dXNlci1hQGV4YW1wbGUuY29t.r0; Path=/auth/logout; Max-Age=3600; HttpOnly; Secure; SameSite=Strict",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withCookies(tt.cookie, tt.refreshMaxAge))
			w := e.serveRaw(newRequest(http.MethodPost, "/auth/login", loginBody, nil))
			if w.Code != http.StatusOK {
				t.Fatalf("login: %d %s", w.Code, w.Body)
			}
			if got := setCookies(w); !slices.Equal(got, tt.want) {
				t.Errorf("Set-Cookie:\n got %q\nwant %q", got, tt.want)
			}
			// The body still holds the tokens, for clients that use them.
			if !strings.Contains(w.Body.String(), `"token":"id:a@example.com"`) {
				t.Errorf("login body: %s", w.Body)
			}
		})
	}
	t.Run("a browser's login answers without the tokens", func(t *testing.T) {
		e := newEnv(t, withCookies("", time.Hour))
		w := e.serveRaw(newRequest(http.MethodPost, "/auth/login", loginBody, map[string]string{"Origin": "http://example.com"}))
		if w.Code != http.StatusOK || len(setCookies(w)) != 3 {
			t.Fatalf("login: %d %s, cookies %q", w.Code, w.Body, setCookies(w))
		}
		body := w.Body.String()
		if strings.Contains(body, "id:a@example.com") || strings.Contains(body, "Token") || !strings.Contains(body, `"expiresIn":3600`) || !strings.Contains(body, `"email":"a@example.com"`) {
			t.Errorf("login body from a browser: %s, want the user and expiry without tokens", body)
		}
	})
	t.Run("no cookies unless configured", func(t *testing.T) {
		e := newEnv(t, nil)
		if w := e.serveRaw(newRequest(http.MethodPost, "/auth/login", loginBody, nil)); len(setCookies(w)) != 0 {
			t.Errorf("Set-Cookie without session cookies: %q", setCookies(w))
		}
	})
}

// A refresh with an empty body renews both cookies from the refresh
// cookie, answers without the tokens, and only for a request from the
// site or an allowed origin.
func TestRefreshFromCookie(t *testing.T) {
	refresh := func(token string) *http.Cookie {
		return &http.Cookie{Name: "ugw_session_refresh", Value: encodeRefresh("", token)}
	}
	same := map[string]string{"Origin": "http://example.com"}
	tests := []struct {
		name        string
		body        string
		header      map[string]string
		cookies     []*http.Cookie
		noCookies   bool // the service has no session cookies
		wantStatus  int
		wantCode    string
		wantRenewed bool // new cookies set, and the session moved on to r1
		wantCleared bool
		wantTokens  bool // the body holds the tokens
	}{
		{name: "same origin", header: same, cookies: []*http.Cookie{refresh("r0")}, wantStatus: 200, wantRenewed: true},
		{name: "allowed origin", header: map[string]string{"Origin": "https://app.example.com"}, cookies: []*http.Cookie{refresh("r0")}, wantStatus: 200, wantRenewed: true},
		{name: "same-origin Referer", header: map[string]string{"Referer": "http://example.com/upload"}, cookies: []*http.Cookie{refresh("r0")}, wantStatus: 200, wantRenewed: true},
		{name: "foreign origin", header: map[string]string{"Origin": "https://evil.example"}, cookies: []*http.Cookie{refresh("r0")}, wantStatus: 403, wantCode: CodeCSRFOrigin},
		{name: "no Origin, no Referer", cookies: []*http.Cookie{refresh("r0")}, wantStatus: 403, wantCode: CodeCSRFOrigin},
		{name: "null origin", header: map[string]string{"Origin": "null"}, cookies: []*http.Cookie{refresh("r0")}, wantStatus: 403, wantCode: CodeCSRFOrigin},
		{name: "no refresh cookie", header: same, wantStatus: 401, wantCode: "UNAUTHENTICATED"},
		{name: "only the session cookie", header: same, cookies: []*http.Cookie{{Name: "ugw_session", Value: "id:a@example.com"}}, wantStatus: 401, wantCode: "UNAUTHENTICATED"},
		{name: "used refresh token clears the cookies", header: same, cookies: []*http.Cookie{refresh("r7")}, wantStatus: 401, wantCode: "INVALID_TOKEN", wantCleared: true},
		{name: "malformed cookie", header: same, cookies: []*http.Cookie{{Name: "ugw_session_refresh", Value: "r0"}}, wantStatus: 401, wantCode: "UNAUTHENTICATED"},
		{name: "token in the body is not checked", body: `{"refreshToken":"r0"}`, header: map[string]string{"Origin": "https://evil.example"}, cookies: []*http.Cookie{refresh("r0")},
			wantStatus: 200, wantRenewed: true, wantTokens: true},
		{name: "empty body without session cookies", noCookies: true, header: same, cookies: []*http.Cookie{refresh("r0")}, wantStatus: 415, wantCode: "UNSUPPORTED_MEDIA_TYPE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var edit func(*Config)
			if !tt.noCookies {
				edit = withCookies("", time.Hour)
			}
			e := newEnv(t, edit)
			w := e.serveRaw(newRequest(http.MethodPost, "/auth/refresh", tt.body, tt.header, tt.cookies...))
			var res response
			_ = json.Unmarshal(w.Body.Bytes(), &res)
			if w.Code != tt.wantStatus || res.Error.Code != tt.wantCode {
				t.Fatalf("got %d %q, want %d %q: %s", w.Code, res.Error.Code, tt.wantStatus, tt.wantCode, w.Body)
			}
			session := cookieNamed(w, "ugw_session", "/")
			refreshed := cookieNamed(w, "ugw_session_refresh", "/auth/refresh")
			if tt.wantRenewed {
				if session == nil || session.Value != "id:a@example.com" || session.MaxAge != 3600 || refreshed == nil || refreshed.Value != encodeRefresh("user-a@example.com", "r1") {
					t.Errorf("renewed cookies: %q", setCookies(w))
				}
				if e.local.next != 1 {
					t.Errorf("refresh token %d, want r1", e.local.next)
				}
				if !strings.Contains(w.Body.String(), `"expiresIn":3600`) || !strings.Contains(w.Body.String(), `"email":"a@example.com"`) {
					t.Errorf("body: %s", w.Body)
				}
			} else if !tt.wantCleared && len(setCookies(w)) != 0 {
				t.Errorf("cookies set on a refused refresh: %q", setCookies(w))
			}
			if tt.wantCleared && (session == nil || session.MaxAge != -1 || refreshed == nil || refreshed.MaxAge != -1) {
				t.Errorf("cookies not cleared: %q", setCookies(w))
			}
			if hasTokens := strings.Contains(w.Body.String(), `"token"`) || strings.Contains(w.Body.String(), "r1"); tt.wantStatus == 200 && hasTokens != tt.wantTokens {
				t.Errorf("tokens in the body: %v, want %v: %s", hasTokens, tt.wantTokens, w.Body)
			}
			if tt.wantCode == CodeCSRFOrigin && e.local.next != 0 {
				t.Error("the provider was asked despite the CSRF refusal")
			}
		})
	}
}

// Cognito needs the user name to refresh for an app client with a secret:
// the refresh cookie carries it.
func TestCognitoRefreshFromCookieKeepsUsername(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Local, c.Cognito = nil, fakeCognito{}
		withCookies("", time.Hour)(c)
	})
	w := e.serveRaw(newRequest(http.MethodPost, "/auth/login", loginBody, nil))
	refresh := cookieNamed(w, "ugw_session_refresh", "/auth/refresh")
	if w.Code != http.StatusOK || refresh == nil || refresh.Value != encodeRefresh("user-a@example.com", "cognito-refresh") {
		t.Fatalf("login: %d %q", w.Code, setCookies(w))
	}
	w = e.serveRaw(newRequest(http.MethodPost, "/auth/refresh", "", map[string]string{"Origin": "http://example.com"}, refresh))
	if s := cookieNamed(w, "ugw_session", "/"); w.Code != http.StatusOK || s == nil || s.Value != "id:user-a@example.com" {
		t.Fatalf("refresh: %d %q %s", w.Code, setCookies(w), w.Body)
	}
	// Cognito keeps the refresh token.
	if r := cookieNamed(w, "ugw_session_refresh", "/auth/refresh"); r == nil || !strings.HasSuffix(r.Value, ".cognito-refresh") {
		t.Errorf("refresh cookie after refresh: %q", setCookies(w))
	}
}

// revokingCognito is a fakeCognito that revokes refresh tokens.
type revokingCognito struct {
	fakeCognito
	revoked *[]string
	err     error
}

func (c revokingCognito) Revoke(_ context.Context, token string) error {
	*c.revoked = append(*c.revoked, token)
	return c.err
}

// With Cognito, sign-out revokes the refresh token of the cookie (when the
// client can); a token Cognito no longer knows is no failure.
func TestCognitoLogoutRevokes(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
	}{
		{"revoked", nil, 200},
		{"unknown token", fmt.Errorf("%w", cognito.ErrInvalidCredentials), 200},
		{"Cognito fails", cognito.ErrUnavailable, 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var revoked []string
			e := newEnv(t, func(c *Config) {
				c.Local, c.Cognito = nil, revokingCognito{revoked: &revoked, err: tt.err}
				withCookies("", time.Hour)(c)
			})
			w := e.serveRaw(newRequest(http.MethodPost, "/auth/logout", "", map[string]string{"Origin": "http://example.com"},
				&http.Cookie{Name: "ugw_session_refresh", Value: encodeRefresh("u", "cognito-refresh")}))
			if w.Code != tt.wantStatus || len(revoked) != 1 || revoked[0] != "cognito-refresh" {
				t.Errorf("logout: %d %s, revoked %q", w.Code, w.Body, revoked)
			}
			if c := cookieNamed(w, "ugw_session", "/"); c == nil || c.MaxAge != -1 {
				t.Errorf("session cookie not cleared: %q", setCookies(w))
			}
		})
	}
}

// Sign-out clears the cookies and revokes the refresh token; from another
// site it is refused and revokes nothing.
func TestLogout(t *testing.T) {
	refresh := &http.Cookie{Name: "ugw_session_refresh", Value: encodeRefresh("", "r0")}
	session := &http.Cookie{Name: "ugw_session", Value: "id:a@example.com"}
	tests := []struct {
		name        string
		body        string
		header      map[string]string
		cookies     []*http.Cookie
		localErr    error
		wantStatus  int
		wantCode    string
		wantRevoked bool
		wantCleared bool
	}{
		{name: "same origin", header: map[string]string{"Origin": "http://example.com"}, cookies: []*http.Cookie{session, refresh}, wantStatus: 200, wantRevoked: true, wantCleared: true},
		{name: "foreign origin", header: map[string]string{"Origin": "https://evil.example"}, cookies: []*http.Cookie{session, refresh}, wantStatus: 403, wantCode: CodeCSRFOrigin},
		{name: "no origin", cookies: []*http.Cookie{session}, wantStatus: 403, wantCode: CodeCSRFOrigin},
		{name: "no cookies", wantStatus: 200, wantCleared: true},
		{name: "refresh token in the body", body: `{"refreshToken":"r0"}`, wantStatus: 200, wantRevoked: true, wantCleared: true},
		{name: "revocation fails", header: map[string]string{"Origin": "http://example.com"}, cookies: []*http.Cookie{refresh}, localErr: errors.New("disk full"),
			wantStatus: 502, wantCode: "IDENTITY_PROVIDER_ERROR", wantCleared: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withCookies("", time.Hour))
			e.local.err = tt.localErr
			w := e.serveRaw(newRequest(http.MethodPost, "/auth/logout", tt.body, tt.header, tt.cookies...))
			var res response
			_ = json.Unmarshal(w.Body.Bytes(), &res)
			if w.Code != tt.wantStatus || res.Error.Code != tt.wantCode {
				t.Fatalf("got %d %q, want %d %q: %s", w.Code, res.Error.Code, tt.wantStatus, tt.wantCode, w.Body)
			}
			if e.local.revoked != tt.wantRevoked {
				t.Errorf("revoked %v, want %v", e.local.revoked, tt.wantRevoked)
			}
			want := []string{
				"ugw_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
				"ugw_session_refresh=; Path=/auth/refresh; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
				"ugw_session_refresh=; Path=/auth/logout; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
			}
			if !tt.wantCleared {
				want = nil
			}
			if got := setCookies(w); !slices.Equal(got, want) {
				t.Errorf("Set-Cookie:\n got %q\nwant %q", got, want)
			}
			if o := e.last(t); o.Action != ActionLogout || o.Status != tt.wantStatus {
				t.Errorf("outcome %+v", o)
			}
		})
	}
}

// The session route answers who is signed in, or 401 JSON.
func TestSessionRoute(t *testing.T) {
	e := newEnv(t, withCookies("", time.Hour))
	tests := []struct {
		name       string
		cookie     *http.Cookie
		wantStatus int
		want       string
	}{
		{"signed in", &http.Cookie{Name: "ugw_session", Value: "id:a@example.com"}, 200,
			`{"success":true,"data":{"id":"sub-a@example.com","email":"a@example.com","role":"uploader"}}`},
		{"not signed in", nil, 401, `{"success":false,"error":{"code":"UNAUTHENTICATED","message":"authentication required"}}`},
		{"bad token", &http.Cookie{Name: "ugw_session", Value: "forged"}, 401, `{"success":false,"error":{"code":"INVALID_TOKEN","message":"the token is invalid or expired"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cookies []*http.Cookie
			if tt.cookie != nil {
				cookies = append(cookies, tt.cookie)
			}
			w := e.serveRaw(newRequest(http.MethodGet, "/auth/session", "", nil, cookies...))
			if w.Code != tt.wantStatus || strings.TrimSpace(w.Body.String()) != tt.want {
				t.Errorf("got %d %s, want %d %s", w.Code, w.Body, tt.wantStatus, tt.want)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
			}
		})
	}
	t.Run("off without an authenticator", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.SessionPath = "/auth/session" })
		if e.svc.Handles(newRequest(http.MethodGet, "/auth/session", "", nil)) {
			t.Error("session route served without Authenticate")
		}
	})
}
