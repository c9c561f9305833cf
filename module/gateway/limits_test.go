package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-upload-gateway/upload-gateway/internal/inflight"
	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"

	"github.com/caddy-upload-gateway/upload-gateway/module/metricsapp"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

// A client over max_uploads_per_client is refused before its body is read;
// users are counted by id, anonymous clients by IP.
func TestPerClientCap(t *testing.T) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{AllowAnonymous: true, MaxUploadsPerClient: 1, perClient: inflight.New(1), budget: s3stream.NewBufferBudget(1<<20, 0),
		rec: &metricsapp.Recorder{Metrics: m, Audit: zap.NewNop()}, logger: zap.NewNop()}
	g.flow = g.flowConfig()
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
			key := g.flow.New(r, replacer{repl}).Client(shared.ClientIP(r))
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
