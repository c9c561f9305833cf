package csrf

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCheck(t *testing.T) {
	policy, err := New([]string{"https://app.example.com", "http://localhost:3000"})
	if err != nil {
		t.Fatal(err)
	}
	policy.Forwarded = func(r *http.Request) bool { return r.RemoteAddr == "10.0.0.1:1234" }
	tests := []struct {
		name    string
		method  string
		tls     bool
		host    string
		remote  string
		header  map[string]string
		wantErr error
	}{
		{name: "same origin", method: "POST", tls: true, host: "gw.example.com", header: map[string]string{"Origin": "https://gw.example.com"}},
		{name: "same origin, default port written", method: "POST", tls: true, host: "gw.example.com:443", header: map[string]string{"Origin": "https://GW.example.com"}},
		{name: "same origin, other port", method: "DELETE", tls: true, host: "127.0.0.1:8443", header: map[string]string{"Origin": "https://127.0.0.1:8443"}},
		{name: "allowed origin", method: "POST", tls: true, host: "gw.example.com", header: map[string]string{"Origin": "https://app.example.com"}},
		{name: "allowed origin, plain http", method: "PUT", tls: true, host: "gw.example.com", header: map[string]string{"Origin": "http://localhost:3000"}},
		{name: "foreign origin", method: "POST", tls: true, host: "gw.example.com", header: map[string]string{"Origin": "https://evil.example"}, wantErr: ErrForeignOrigin},
		{name: "same host, other scheme", method: "POST", tls: true, host: "gw.example.com", header: map[string]string{"Origin": "http://gw.example.com"}, wantErr: ErrForeignOrigin},
		{name: "same host, other port", method: "POST", tls: true, host: "gw.example.com", header: map[string]string{"Origin": "https://gw.example.com:8443"}, wantErr: ErrForeignOrigin},
		{name: "subdomain is foreign", method: "POST", tls: true, host: "example.com", header: map[string]string{"Origin": "https://a.example.com"}, wantErr: ErrForeignOrigin},
		{name: "null origin", method: "POST", tls: true, host: "gw.example.com", header: map[string]string{"Origin": "null"}, wantErr: ErrNoOrigin},
		{name: "null origin, same-origin referer", method: "POST", tls: true, host: "gw.example.com", header: map[string]string{"Origin": "null", "Referer": "https://gw.example.com/page"}, wantErr: ErrNoOrigin},
		{name: "garbage origin", method: "POST", tls: true, host: "gw.example.com", header: map[string]string{"Origin": "https://gw.example.com/path"}, wantErr: ErrForeignOrigin},
		{name: "no origin, same-origin referer", method: "POST", tls: true, host: "gw.example.com", header: map[string]string{"Referer": "https://gw.example.com/upload?x=1"}},
		{name: "no origin, allowed referer", method: "POST", tls: true, host: "gw.example.com", header: map[string]string{"Referer": "https://app.example.com/"}},
		{name: "no origin, foreign referer", method: "POST", tls: true, host: "gw.example.com", header: map[string]string{"Referer": "https://evil.example/gw.example.com"}, wantErr: ErrForeignOrigin},
		{name: "no origin, relative referer", method: "POST", tls: true, host: "gw.example.com", header: map[string]string{"Referer": "/upload"}, wantErr: ErrNoOrigin},
		{name: "no origin, no referer", method: "POST", tls: true, host: "gw.example.com", wantErr: ErrNoOrigin},
		{name: "origin wins over referer", method: "POST", tls: true, host: "gw.example.com", header: map[string]string{"Origin": "https://evil.example", "Referer": "https://gw.example.com/"}, wantErr: ErrForeignOrigin},
		{name: "GET is not checked", method: "GET", tls: true, host: "gw.example.com", header: map[string]string{"Origin": "https://evil.example"}},
		{name: "HEAD is not checked", method: "HEAD", tls: true, host: "gw.example.com"},
		{name: "OPTIONS is not checked", method: "OPTIONS", tls: true, host: "gw.example.com", header: map[string]string{"Origin": "https://evil.example"}},
		{name: "PATCH is checked", method: "PATCH", tls: true, host: "gw.example.com", header: map[string]string{"Origin": "https://evil.example"}, wantErr: ErrForeignOrigin},
		{name: "trusted proxy terminates TLS", method: "POST", host: "backend:8080", remote: "10.0.0.1:1234",
			header: map[string]string{"Origin": "https://gw.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "gw.example.com"}},
		{name: "trusted proxy, first value counts", method: "POST", host: "backend:8080", remote: "10.0.0.1:1234",
			header: map[string]string{"Origin": "https://gw.example.com", "X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "gw.example.com, backend"}},
		{name: "untrusted peer's forwarded headers are ignored", method: "POST", host: "backend:8080", remote: "192.0.2.9:1234",
			header: map[string]string{"Origin": "https://evil.example", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}, wantErr: ErrForeignOrigin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/api/files", nil)
			r.Host = tt.host
			r.TLS = nil
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if tt.remote != "" {
				r.RemoteAddr = tt.remote
			}
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			err := policy.Check(r)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Check = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrOrigin) {
				t.Errorf("%v does not wrap ErrOrigin", err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		origin string
		ok     bool
	}{
		{"https://app.example.com", true},
		{"http://localhost:3000", true},
		{"https://[::1]:8443", true},
		{"https://app.example.com/", true},
		{"app.example.com", false},
		{"https://app.example.com/path", false},
		{"https://user@app.example.com", false},
		{"ftp://app.example.com", false},
		{"https://app.example.com:", false},
		{"null", false},
		{"*", false},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			_, err := New([]string{tt.origin})
			if (err == nil) != tt.ok {
				t.Errorf("New(%q) = %v, want ok %v", tt.origin, err, tt.ok)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	tests := map[string]string{
		"HTTPS://App.Example.com:443": "https://app.example.com",
		"http://example.com:80":       "http://example.com",
		"http://example.com:443":      "http://example.com:443",
		"https://[::1]:443":           "https://[::1]",
		"https://[::1]:8443":          "https://[::1]:8443",
	}
	for in, want := range tests {
		if got, ok := Normalize(in); !ok || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
