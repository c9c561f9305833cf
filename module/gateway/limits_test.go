package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-upload-gateway/upload-gateway/internal/bodyrate"
	"github.com/caddy-upload-gateway/upload-gateway/internal/inflight"
	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"
)

// The answers to a hostile or overloaded situation: JSON errors with the
// right status, and Retry-After where retrying later helps.
func TestAbuseErrors(t *testing.T) {
	g := &Gateway{MemoryWait: caddy.Duration(30 * time.Second), ReadTimeout: caddy.Duration(time.Second), MinRate: 1024,
		MaxUploadsPerClient: 3, logger: zap.NewNop()}
	tests := []struct {
		name           string
		err, bodyErr   error
		wantStatus     int
		wantCode       string
		wantRetryAfter string
	}{
		{"memory exhausted too long", fmt.Errorf("storing file: %w", s3stream.ErrMemoryWait), nil, 503, "SERVER_BUSY", "30"},
		{"too many uploads of one client", errTooManyUploads, nil, 429, "TOO_MANY_UPLOADS", "5"},
		{"slowloris", fmt.Errorf("%w: x", s3stream.ErrRead), bodyrate.ErrTooSlow, 408, "REQUEST_TIMEOUT", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			if err := g.fail(w, caddy.NewReplacer(), tt.err, tt.bodyErr); err != nil {
				t.Fatal(err)
			}
			var body struct {
				Success bool
				Error   struct{ Code, Message string }
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if w.Code != tt.wantStatus || body.Error.Code != tt.wantCode || body.Success {
				t.Errorf("got %d %+v, want %d %s", w.Code, body, tt.wantStatus, tt.wantCode)
			}
			if got := w.Header().Get("Retry-After"); got != tt.wantRetryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tt.wantRetryAfter)
			}
		})
	}
}

// A client over max_uploads_per_client is refused before its body is read;
// users are counted by id, anonymous clients by IP.
func TestPerClientCap(t *testing.T) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{AllowAnonymous: true, MaxUploadsPerClient: 1, perClient: inflight.New(1), budget: s3stream.NewBufferBudget(1<<20, 0),
		metrics: m, logger: zap.NewNop(), audit: zap.NewNop()}
	tests := []struct {
		name       string
		user       string
		remote     string
		wantStatus int
	}{
		{"the same user again", "alice", "192.0.2.9:1", http.StatusTooManyRequests},
		{"another user from the same IP", "bob", "192.0.2.1:2", 0},
		{"anonymous from the busy IP", "", "192.0.2.1:3", http.StatusTooManyRequests},
		{"anonymous from the busy /64", "", "[2001:db8::2]:3", http.StatusTooManyRequests},
		{"anonymous from elsewhere", "", "192.0.2.7:3", 0},
	}
	// alice, 192.0.2.1 and 2001:db8::/64 each have one upload in progress.
	for _, key := range []string{"user:alice", "ip:192.0.2.1", "ip:2001:db8::/64"} {
		if _, ok := g.perClient.Acquire(key); !ok {
			t.Fatal("setup")
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPut, "/up/x", strings.NewReader("data"))
			r.RemoteAddr = tt.remote
			repl := caddy.NewReplacer()
			if tt.user != "" {
				repl.Set("http.auth.user.id", tt.user)
				repl.Set("http.auth.user.role", "uploader")
			}
			ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
			ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
			r = r.WithContext(ctx)
			key := g.clientKey(r, repl)
			_, ok := g.perClient.Acquire(key)
			got := 0
			if !ok {
				w := httptest.NewRecorder()
				_ = g.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
				got = w.Code
				if w.Header().Get("Retry-After") == "" {
					t.Errorf("no Retry-After")
				}
			}
			if got != tt.wantStatus {
				t.Errorf("status %d, want %d (key %s)", got, tt.wantStatus, key)
			}
		})
	}
}
