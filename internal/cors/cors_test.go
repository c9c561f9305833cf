package cors

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"exact", Config{Origins: []string{"https://app.example.com"}}, false},
		{"port and trailing slash", Config{Origins: []string{"http://127.0.0.1:8080/"}}, false},
		{"wildcard subdomain", Config{Origins: []string{"https://*.example.com"}}, false},
		{"any", Config{Origins: []string{"*"}, Headers: []string{"*"}}, false},
		{"any with credentials", Config{Origins: []string{"*"}, Credentials: true}, true},
		{"wildcard subdomain with credentials", Config{Origins: []string{"https://*.example.com"}, Credentials: true}, false},
		{"no origins", Config{}, true},
		{"no scheme", Config{Origins: []string{"app.example.com"}}, true},
		{"path", Config{Origins: []string{"https://app.example.com/upload"}}, true},
		{"ftp", Config{Origins: []string{"ftp://app.example.com"}}, true},
		{"inner wildcard", Config{Origins: []string{"https://a.*.example.com"}}, true},
		{"bad header", Config{Origins: []string{"*"}, Headers: []string{"X Bad"}}, true},
		{"bad expose header", Config{Origins: []string{"*"}, ExposeHeaders: []string{"a:b"}}, true},
		{"bad method", Config{Origins: []string{"*"}, Methods: []string{"GE T"}}, true},
		{"negative max age", Config{Origins: []string{"*"}, MaxAge: -time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New: %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestAllowed(t *testing.T) {
	p, err := New(Config{Origins: []string{"https://App.example.com", "http://localhost:8080", "https://*.cdn.example.net"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"https://APP.example.com", true},
		{"http://app.example.com", false},
		{"https://app.example.com:8443", false},
		{"https://evil.example.com", false},
		{"https://app.example.com.evil.net", false},
		{"http://localhost:8080", true},
		{"http://localhost:8081", false},
		{"https://a.cdn.example.net", true},
		{"https://a.b.cdn.example.net", true},
		{"https://cdn.example.net", false},
		{"https://xcdn.example.net", false},
		{"http://a.cdn.example.net", false},
		{"null", false},
		{"", false},
		{"https://app.example.com/path", false},
	}
	for _, tt := range tests {
		if got := p.Allowed(tt.origin); got != tt.want {
			t.Errorf("Allowed(%q) = %v, want %v", tt.origin, got, tt.want)
		}
	}
}

func TestHandle(t *testing.T) {
	const app = "https://app.example.com"
	strict := Config{Origins: []string{app}, MaxAge: 10 * time.Minute, ExposeHeaders: []string{"Retry-After"}}
	creds := Config{Origins: []string{"http://127.0.0.1:9", "https://any.example"}, Headers: []string{"*"}, Credentials: true}
	tests := []struct {
		name      string
		cfg       Config
		method    string
		header    map[string]string
		wantDone  bool
		status    int // of a preflight
		wantHdr   map[string]string
		wantError string
	}{
		{
			name: "preflight allowed", cfg: strict, method: "OPTIONS",
			header:   map[string]string{"Origin": app, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,authorization"},
			wantDone: true, status: 204,
			wantHdr: map[string]string{
				"Access-Control-Allow-Origin": app, "Access-Control-Allow-Methods": "GET, POST, DELETE",
				"Access-Control-Allow-Headers": "Authorization, Content-Type", "Access-Control-Max-Age": "600",
				"Access-Control-Allow-Credentials": "", "Vary": "Origin",
			},
		},
		{
			name: "preflight from another origin", cfg: strict, method: "OPTIONS",
			header:   map[string]string{"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
			wantDone: true, status: 403, wantError: "origin not allowed",
			wantHdr: map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": "", "Vary": "Origin"},
		},
		{
			name: "preflight of a method not allowed", cfg: strict, method: "OPTIONS",
			header:   map[string]string{"Origin": app, "Access-Control-Request-Method": "PUT"},
			wantDone: true, status: 403, wantError: "method PUT not allowed",
			wantHdr: map[string]string{"Access-Control-Allow-Origin": ""},
		},
		{
			name: "preflight of a header not allowed", cfg: strict, method: "OPTIONS",
			header:   map[string]string{"Origin": app, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization, x-secret"},
			wantDone: true, status: 403, wantError: "header x-secret not allowed",
			wantHdr: map[string]string{"Access-Control-Allow-Origin": ""},
		},
		{
			name: "preflight with credentials and any header", cfg: creds, method: "OPTIONS",
			header:   map[string]string{"Origin": "http://127.0.0.1:9", "Access-Control-Request-Method": "DELETE", "Access-Control-Request-Headers": "x-custom"},
			wantDone: true, status: 204,
			wantHdr: map[string]string{
				"Access-Control-Allow-Origin": "http://127.0.0.1:9", "Access-Control-Allow-Headers": "x-custom",
				"Access-Control-Allow-Credentials": "true", "Access-Control-Max-Age": "",
			},
		},
		{
			name: "actual request allowed", cfg: strict, method: "POST",
			header:  map[string]string{"Origin": app},
			wantHdr: map[string]string{"Access-Control-Allow-Origin": app, "Access-Control-Expose-Headers": "Retry-After", "Vary": "Origin", "Access-Control-Allow-Methods": ""},
		},
		{
			name: "actual request with credentials never gets *", cfg: creds, method: "GET",
			header:  map[string]string{"Origin": "https://any.example"},
			wantHdr: map[string]string{"Access-Control-Allow-Origin": "https://any.example", "Access-Control-Allow-Credentials": "true"},
		},
		{
			name: "actual request from another origin", cfg: strict, method: "GET",
			header:  map[string]string{"Origin": "https://evil.example.com"},
			wantHdr: map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Expose-Headers": "", "Vary": "Origin"},
		},
		{
			name: "same-origin request", cfg: strict, method: "GET",
			wantHdr: map[string]string{"Access-Control-Allow-Origin": "", "Vary": "Origin"},
		},
		{
			name: "OPTIONS without a request method is no preflight", cfg: strict, method: "OPTIONS",
			header:  map[string]string{"Origin": app},
			wantHdr: map[string]string{"Access-Control-Allow-Origin": app, "Access-Control-Allow-Methods": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(tt.method, "/files", nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			done := p.Handle(w, r)
			if done != tt.wantDone {
				t.Fatalf("Handle = %v, want %v", done, tt.wantDone)
			}
			if done && w.Code != tt.status {
				t.Errorf("status %d, want %d", w.Code, tt.status)
			}
			for k, want := range tt.wantHdr {
				if got := w.Header().Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if tt.wantError != "" {
				var body struct {
					Success bool
					Error   struct{ Code, Message string }
				}
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
					t.Fatalf("body %q: %v", w.Body, err)
				}
				want := struct{ Code, Message string }{ErrorCode, tt.wantError}
				if body.Error != want || body.Success {
					t.Errorf("error %+v, want %+v", body.Error, want)
				}
				if ct := w.Header().Get("Content-Type"); ct != "application/json" && ct != "application/json; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
			}
		})
	}
}

func TestVaryOnPreflight(t *testing.T) {
	p, _ := New(Config{Origins: []string{"*"}})
	r := httptest.NewRequest(http.MethodOptions, "/files", nil)
	r.Header.Set("Origin", "https://a.example")
	r.Header.Set("Access-Control-Request-Method", "GET")
	w := httptest.NewRecorder()
	p.Handle(w, r)
	want := []string{"Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"}
	if got := w.Header().Values("Vary"); !slices.Equal(got, want) {
		t.Errorf("Vary %q, want %q", got, want)
	}
}
