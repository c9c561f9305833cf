package identity

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// With session_cookie, sign-in sets the cookies and the session cookie
// authenticates later requests like token_cookie, under the CSRF rule;
// behind a trusted proxy the origin the client saw is the forwarded one.
func TestSessionCookie(t *testing.T) {
	a := newLocalAuth(t, func(a *Auth) {
		a.SessionCookie = "ugw_session"
		a.AllowedOrigins = []string{"https://app.example.com"}
	})
	w := serve(t, a, loginRequestFrom("a@example.com", "pw", "192.0.2.80"))
	var session *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == "ugw_session" {
			session = c
		}
	}
	if w.Code != http.StatusOK || len(w.Result().Cookies()) != 3 || session == nil || !session.HttpOnly || !session.Secure ||
		session.SameSite != http.SameSiteStrictMode || session.Path != "/" || session.MaxAge != 3600 {
		t.Fatalf("login: %d %q", w.Code, w.Header().Values("Set-Cookie"))
	}
	tests := []struct {
		name     string
		method   string
		path     string
		header   map[string]string
		trusted  bool // the request came from a trusted proxy
		wantCode int
	}{
		{"same origin", "POST", "/up", map[string]string{"Origin": "http://example.com"}, false, http.StatusNoContent},
		{"allowed origin", "DELETE", "/up", map[string]string{"Origin": "https://app.example.com"}, false, http.StatusNoContent},
		{"foreign origin", "POST", "/up", map[string]string{"Origin": "https://evil.example"}, false, http.StatusForbidden},
		{"GET from anywhere", "GET", "/up", map[string]string{"Origin": "https://evil.example"}, false, http.StatusNoContent},
		{"trusted proxy's forwarded origin", "POST", "/up", map[string]string{"Origin": "https://gw.example.com",
			"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gw.example.com"}, true, http.StatusNoContent},
		{"untrusted peer's forwarded origin", "POST", "/up", map[string]string{"Origin": "https://gw.example.com",
			"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gw.example.com"}, false, http.StatusForbidden},
		{"who is signed in", "GET", "/auth/session", nil, false, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			r.AddCookie(&http.Cookie{Name: "ugw_session", Value: session.Value})
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())
			ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.TrustedProxyVarKey: tt.trusted})
			w := serve(t, a, r.WithContext(ctx))
			if w.Code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.wantCode, w.Body)
			}
			if tt.wantCode == http.StatusForbidden && !strings.Contains(w.Body.String(), `"code":"CSRF_ORIGIN"`) {
				t.Errorf("body %s", w.Body)
			}
			if tt.path == "/auth/session" {
				var env struct {
					Data struct{ ID, Email, Role string }
				}
				if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Data.Email != "a@example.com" || env.Data.Role != "uploader" || env.Data.ID == "" {
					t.Errorf("session: %s", w.Body)
				}
			}
		})
	}
}

// A configuration from before sign-out existed that put revoke_path at
// /auth/logout keeps revoking there.
func TestRevokePathAtLogoutKeepsRevoking(t *testing.T) {
	a := newLocalAuth(t, func(a *Auth) { a.RevokePath = "/auth/logout" })
	r := httptest.NewRequest(http.MethodPost, "/auth/logout", strings.NewReader(`{}`))
	r.Header.Set("Content-Type", "application/json")
	w := serve(t, a, r)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "refreshToken is required") {
		t.Errorf("POST /auth/logout: %d %s, want the revoke route's 400", w.Code, w.Body)
	}
}
