package uploadpage

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func newPage(t *testing.T, cfg Config) *Page {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func get(p *Page, method, target string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	return w
}

// TestIndex checks the rendered index: the configuration as escaped data
// attributes and title, and links to the script and style sheet with the
// version query, which the page then serves as immutable.
func TestIndex(t *testing.T) {
	t.Parallel()
	p := newPage(t, Config{APIBase: "/api/", AuthBase: "/id", Title: `Files <script>alert("x")</script> & more`,
		ConnectOrigins: []string{"http://127.0.0.1:8333", "https://*.amazonaws.com"}})
	w := get(p, http.MethodGet, "/")
	body := w.Body.String()
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET / = %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	for _, want := range []string{
		`data-api-base="/api"`, `data-auth-base="/id"`,
		`<title>Files &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more</title>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("index lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "{{") {
		t.Errorf("index holds an unescaped title or a template action:\n%s", body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-cache" || w.Header().Get("ETag") == "" {
		t.Errorf("index: Cache-Control %q ETag %q, want no-cache and an ETag", cc, w.Header().Get("ETag"))
	}
	csp := w.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';", "img-src 'self' blob: data:",
		"connect-src 'self' http://127.0.0.1:8333 https://*.amazonaws.com;", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q allows unsafe sources", csp)
	}

	links := regexp.MustCompile(`(?:src|href)="(page\.(?:js|css)\?v=[0-9a-f]+)"`).FindAllStringSubmatch(body, -1)
	if len(links) != 2 {
		t.Fatalf("index links %q, want page.js and page.css with a version", links)
	}
	for _, l := range links {
		w := get(p, http.MethodGet, "/"+l[1])
		if w.Code != http.StatusOK || w.Body.Len() < 1000 || w.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("GET /%s = %d, %d bytes, Cache-Control %q", l[1], w.Code, w.Body.Len(), w.Header().Get("Cache-Control"))
		}
		if w.Header().Get("Content-Security-Policy") != csp || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET /%s: headers %v", l[1], w.Header())
		}
	}
}

// TestServing checks content types, caching and which requests the page
// takes; every other request is left to the next handler.
func TestServing(t *testing.T) {
	t.Parallel()
	p := newPage(t, Config{Path: "/upload", APIBase: "/api"})
	etag := get(p, http.MethodGet, "/upload/page.js").Header().Get("ETag")
	tests := []struct {
		method, target string
		header         []string
		handles        bool
		status         int
		ctype, cache   string
	}{
		{"GET", "/upload/", nil, true, 200, "text/html; charset=utf-8", "no-cache"},
		{"HEAD", "/upload/index.html", nil, true, 200, "text/html; charset=utf-8", "no-cache"},
		{"GET", "/upload/page.js", nil, true, 200, "text/javascript; charset=utf-8", "no-cache"},
		{"GET", "/upload/page.js?v=old", nil, true, 200, "text/javascript; charset=utf-8", "no-cache"},
		{"GET", "/upload/page.css?v=" + p.ver, nil, true, 200, "text/css; charset=utf-8", "public, max-age=31536000, immutable"},
		{"GET", "/upload/page.js", []string{"If-None-Match", etag}, true, 304, "", "no-cache"},
		{"GET", "/upload", nil, true, 308, "", ""},
		{"POST", "/upload/", nil, false, 404, "", ""},
		{"GET", "/", nil, false, 404, "", ""},
		{"GET", "/upload/other.js", nil, false, 404, "", ""},
		{"GET", "/api/files", nil, false, 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			if got := p.Handles(r); got != tt.handles {
				t.Errorf("Handles = %v, want %v", got, tt.handles)
			}
			w := get(p, tt.method, tt.target, tt.header...)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if tt.ctype != "" && w.Header().Get("Content-Type") != tt.ctype {
				t.Errorf("Content-Type %q, want %q", w.Header().Get("Content-Type"), tt.ctype)
			}
			if w.Header().Get("Cache-Control") != tt.cache {
				t.Errorf("Cache-Control %q, want %q", w.Header().Get("Cache-Control"), tt.cache)
			}
			if tt.method == "HEAD" && w.Body.Len() != 0 {
				t.Errorf("HEAD answered %d bytes", w.Body.Len())
			}
			if w.Header().Get("Content-Security-Policy") == "" {
				t.Error("no Content-Security-Policy")
			}
		})
	}
	if loc := get(p, "GET", "/upload").Header().Get("Location"); loc != "/upload/" {
		t.Errorf("redirect to %q, want /upload/", loc)
	}
}

// TestConfigErrors checks that paths and origins that could break out of
// the index's attributes or the CSP are refused.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"api base without slash", Config{APIBase: "api"}},
		{"api base with quote", Config{APIBase: `/api"x`}},
		{"auth base with space", Config{AuthBase: "/a b"}},
		{"path with query", Config{Path: "/p?x"}},
		{"origin with path", Config{ConnectOrigins: []string{"https://s3.example.com/bucket"}}},
		{"origin with semicolon", Config{ConnectOrigins: []string{"https://x;script-src *"}}},
		{"origin not http", Config{ConnectOrigins: []string{"javascript:alert(1)"}}},
		{"origin with user", Config{ConnectOrigins: []string{"https://u@s3.example.com"}}},
		{"bare host", Config{ConnectOrigins: []string{"s3.example.com"}}},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg); err == nil {
			t.Errorf("%s: New(%+v) succeeded, want an error", tt.name, tt.cfg)
		}
	}
	if _, err := New(Config{ConnectOrigins: []string{"https://s3.example.com/", "http://[::1]:8333"}}); err != nil {
		t.Errorf("valid origins refused: %v", err)
	}
}
