package page

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    Page
		wantErr string
	}{
		{"bare", `upload_page`, Page{}, ""},
		{"all options", `upload_page {
			path /upload/
			api_base_path /files-api
			auth_base_path /id
			title "Team uploads"
			connect_origins https://uploads.s3.eu-west-1.amazonaws.com {env.S3_ORIGIN}
			connect_origins http://127.0.0.1:8333
		}`, Page{Path: "/upload/", APIBasePath: "/files-api", AuthBasePath: "/id", Title: "Team uploads",
			ConnectOrigins: []string{"https://uploads.s3.eu-west-1.amazonaws.com", "{env.S3_ORIGIN}", "http://127.0.0.1:8333"}}, ""},
		{"argument", `upload_page /x`, Page{}, "wrong argument count"},
		{"unknown", "upload_page {\n colour blue\n}", Page{}, "unrecognized subdirective colour"},
		{"two titles", "upload_page {\n title a b\n}", Page{}, "unexpected argument"},
		{"no origins", "upload_page {\n connect_origins\n}", Page{}, "wrong argument count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Page
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestServeHTTP checks that the handler answers for the page and passes
// every other request (the login API, the file API, uploads) on.
func TestServeHTTP(t *testing.T) {
	t.Setenv("UGW_TEST_S3_ORIGIN", "http://127.0.0.1:8333")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	p := &Page{ConnectOrigins: []string{"{env.UGW_TEST_S3_ORIGIN}", "{env.UGW_TEST_UNSET}"}}
	if err := p.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path string
		passed       bool
	}{
		{"GET", "/", false},
		{"GET", "/page.js", false},
		{"HEAD", "/page.css", false},
		{"POST", "/", true},
		{"POST", "/auth/login", true},
		{"GET", "/auth/session", true},
		{"GET", "/api/files", true},
		{"GET", "/upload", true},
	}
	for _, tt := range tests {
		var passed bool
		next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
			passed = true
			return nil
		})
		w := httptest.NewRecorder()
		if err := p.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil), next); err != nil {
			t.Fatal(err)
		}
		if passed != tt.passed {
			t.Errorf("%s %s: passed on %v, want %v", tt.method, tt.path, passed, tt.passed)
		}
		if !tt.passed && w.Code != http.StatusOK {
			t.Errorf("%s %s: status %d", tt.method, tt.path, w.Code)
		}
	}
	w := httptest.NewRecorder()
	_ = p.ServeHTTP(w, httptest.NewRequest("GET", "/", nil), nil)
	if body := w.Body.String(); !strings.Contains(body, `data-api-base="/api"`) {
		t.Errorf("index without the default API base path:\n%s", body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' http://127.0.0.1:8333;") {
		t.Errorf("CSP %q: want the expanded origin only", csp)
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []Page{{Path: "upload"}, {APIBasePath: "api"}, {AuthBasePath: "auth"}} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v validated", p)
		}
	}
}
