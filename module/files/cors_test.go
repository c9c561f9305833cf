package files

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The cors block answers preflights of every file-API path itself and
// marks answers for allowed origins; other paths, and every preflight
// without a cors block, pass on to the next handler.
func TestAPICORS(t *testing.T) {
	const app = "https://app.example.com"
	withCORS, err := provisionAPI(t, "secret 0123456789abcdef0123456789abcdef", "base_path /api",
		"cors {\n origins "+app+"\n max_age 5m\n credentials\n}")
	if err != nil {
		t.Fatal(err)
	}
	without, err := provisionAPI(t, "secret 0123456789abcdef0123456789abcdef", "base_path /api")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		api        *API
		method     string
		target     string
		origin     string
		reqMethod  string // Access-Control-Request-Method
		wantPassed bool
		wantStatus int
		wantOrigin string // Access-Control-Allow-Origin
		wantCreds  string
		wantMaxAge string
	}{
		{"preflight of a route", withCORS, "OPTIONS", "/api/files/upload-url", app, "POST", false, 204, app, "true", "300"},
		{"preflight of a fileId route", withCORS, "OPTIONS", "/api/files/abc/confirm", app, "POST", false, 204, app, "true", "300"},
		{"preflight of the list", withCORS, "OPTIONS", "/api/files", app, "GET", false, 204, app, "true", "300"},
		{"preflight from another origin", withCORS, "OPTIONS", "/api/files", "https://evil.example", "GET", false, 403, "", "", ""},
		{"preflight of another path", withCORS, "OPTIONS", "/api/auth/login", app, "POST", true, 0, "", "", ""},
		{"preflight without cors", without, "OPTIONS", "/api/files", app, "GET", true, 0, "", "", ""},
		{"actual request from the app", withCORS, "GET", "/api/files/not-base64!", app, "", false, 400, app, "true", ""},
		{"actual request from another origin", withCORS, "GET", "/api/files/not-base64!", "https://evil.example", "", false, 400, "", "", ""},
		{"actual request without cors", without, "GET", "/api/files/not-base64!", app, "", false, 400, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			r.Header.Set("Origin", tt.origin)
			if tt.reqMethod != "" {
				r.Header.Set("Access-Control-Request-Method", tt.reqMethod)
			}
			repl := caddy.NewReplacer()
			repl.Set("http.auth.user.id", "alice")
			repl.Set("http.auth.user.role", "uploader")
			r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
			w := httptest.NewRecorder()
			passed := false
			next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { passed = true; return nil })
			if err := tt.api.ServeHTTP(w, r, next); err != nil {
				t.Fatal(err)
			}
			if passed != tt.wantPassed {
				t.Fatalf("passed on: %v, want %v", passed, tt.wantPassed)
			}
			if passed {
				return
			}
			h := w.Header()
			if w.Code != tt.wantStatus || h.Get("Access-Control-Allow-Origin") != tt.wantOrigin ||
				h.Get("Access-Control-Allow-Credentials") != tt.wantCreds || h.Get("Access-Control-Max-Age") != tt.wantMaxAge {
				t.Errorf("got %d %v %s", w.Code, h, w.Body)
			}
			if tt.wantStatus == 403 && !strings.Contains(w.Body.String(), `"CORS_NOT_ALLOWED"`) {
				t.Errorf("body %s", w.Body)
			}
			if tt.api == withCORS && h.Get("Vary") != "Origin" {
				t.Errorf("Vary %q", h.Values("Vary"))
			}
		})
	}
}
