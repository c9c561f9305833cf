package identity

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// A token in the configured cookie or query parameter authenticates like
// the header; a query token is removed before the next handler. A cookie
// authenticates a state-changing request only from the site's own origin
// (the CSRF check); a bearer header is not checked.
func TestTokenCookieAndQuery(t *testing.T) {
	a := newLocalAuth(t, func(a *Auth) {
		a.TokenCookie = "id_token"
		a.TokenQuery = "access_token"
	})
	plain := newLocalAuth(t, nil)
	w := serve(t, a, loginRequestFrom("a@example.com", "pw", "192.0.2.70"))
	var env struct {
		Data struct{ Token string } `json:"data"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Data.Token == "" {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	tok := env.Data.Token
	tests := []struct {
		name      string
		h         *Auth
		method    string // default POST
		origin    string // Origin header
		url       string
		cookie    string
		header    string
		wantCode  int
		wantQuery string
	}{
		{name: "cookie", h: a, url: "/up?a=1", origin: "http://example.com", cookie: tok, wantCode: http.StatusNoContent, wantQuery: "a=1"},
		{name: "cookie from another site", h: a, url: "/up", origin: "https://evil.example", cookie: tok, wantCode: http.StatusForbidden},
		{name: "cookie without Origin", h: a, url: "/up", cookie: tok, wantCode: http.StatusForbidden},
		{name: "cookie, GET without Origin", h: a, method: http.MethodGet, url: "/up?a=1", cookie: tok, wantCode: http.StatusNoContent, wantQuery: "a=1"},
		{name: "header from another site", h: a, url: "/up?a=1", origin: "https://evil.example", header: "Bearer " + tok, wantCode: http.StatusNoContent, wantQuery: "a=1"},
		{name: "query, stripped", h: a, url: "/up?a=1&access_token=" + tok, wantCode: http.StatusNoContent, wantQuery: "a=1"},
		{name: "bad cookie", h: a, url: "/up", origin: "http://example.com", cookie: "garbage", wantCode: http.StatusUnauthorized},
		{name: "bad header beats good cookie", h: a, url: "/up", cookie: tok, header: "Bearer garbage", wantCode: http.StatusUnauthorized},
		{name: "cookie not configured", h: plain, url: "/up", cookie: tok, wantCode: http.StatusUnauthorized},
		{name: "query not configured", h: plain, url: "/up?access_token=" + tok, wantCode: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(cmp.Or(tt.method, http.MethodPost), tt.url, nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "id_token", Value: tt.cookie})
			}
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			repl := caddy.NewReplacer()
			r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
			w := httptest.NewRecorder()
			var query string
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				query = r.URL.RawQuery
				w.WriteHeader(http.StatusNoContent)
				return nil
			})
			if err := tt.h.ServeHTTP(w, r, next); err != nil {
				t.Fatal(err)
			}
			if w.Code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.wantCode, w.Body)
			}
			if tt.wantCode == http.StatusForbidden && !strings.Contains(w.Body.String(), `"code":"CSRF_ORIGIN"`) {
				t.Errorf("403 without CSRF_ORIGIN: %s", w.Body)
			}
			if tt.wantCode != http.StatusNoContent {
				return
			}
			if query != tt.wantQuery {
				t.Errorf("next handler saw query %q, want %q", query, tt.wantQuery)
			}
			if id, _ := repl.GetString("http.auth.user.email"); id != "a@example.com" {
				t.Errorf("user email placeholder %q", id)
			}
		})
	}
}
