package resumable

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-upload-gateway/upload-gateway/module/metricsapp"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    Handler
		wantErr bool
	}{
		{name: "sizes and durations", input: `upload_tus {
			bucket b
			part_size 16MiB
			max_size 1GiB
			upload_ttl 1h
			lock_timeout 90s
			secret s
			old_secret o1
			old_secret o2
			allow_anonymous
			disable_tags
			max_open_uploads 7
			memory_limit 256MiB
			memory_wait 5s
			allowed_types image/* application/pdf
			janitor {
				max_age 2h
				interval 5m
			}
		}`, want: Handler{PartSize: 16 << 20, MaxSize: 1 << 30, UploadTTL: caddy.Duration(3600e9), LockTimeout: caddy.Duration(90e9),
			Secret: "s", OldSecrets: []string{"o1", "o2"}, AllowAnonymous: true, DisableTags: true, MaxOpenUploads: 7,
			MemoryLimit: 256 << 20, MemoryWait: caddy.Duration(5 * time.Second),
			AllowedTypes: []string{"image/*", "application/pdf"},
			Janitor:      &shared.JanitorConfig{MaxAge: caddy.Duration(2 * time.Hour), Interval: caddy.Duration(5 * time.Minute)}}},
		{name: "argument on the directive", input: `upload_tus x { }`, wantErr: true},
		{name: "unknown subdirective", input: `upload_tus { chunk 1 }`, wantErr: true},
		{name: "bad size", input: `upload_tus { part_size lots }`, wantErr: true},
		{name: "allowed_types without a type", input: "upload_tus {\n allowed_types\n}", wantErr: true},
		{name: "flag with an argument", input: `upload_tus { allow_anonymous yes }`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if h.Bucket != "b" || h.PartSize != tt.want.PartSize || h.MaxSize != tt.want.MaxSize || h.UploadTTL != tt.want.UploadTTL ||
				h.LockTimeout != tt.want.LockTimeout || h.Secret != tt.want.Secret || len(h.OldSecrets) != 2 || h.AllowAnonymous != tt.want.AllowAnonymous ||
				h.MaxOpenUploads != tt.want.MaxOpenUploads || h.MemoryLimit != tt.want.MemoryLimit || h.MemoryWait != tt.want.MemoryWait || h.DisableTags != tt.want.DisableTags || h.Janitor == nil || *h.Janitor != *tt.want.Janitor ||
				!slices.Equal(h.AllowedTypes, tt.want.AllowedTypes) {
				t.Errorf("got %+v", h)
			}
		})
	}
}

func TestAnonymousRefused(t *testing.T) {
	h := &Handler{logger: zap.NewNop(), rec: &metricsapp.Recorder{}}
	r := httptest.NewRequest("POST", "/tus/", nil)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	err := h.ServeHTTP(httptest.NewRecorder(), r, nil)
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Errorf("err = %v, want a 401 HandlerError", err)
	}
}

// TestAnonymousRefusedIETF: a request of the IETF draft is refused
// without the tus header, and recorded under its own endpoint.
func TestAnonymousRefusedIETF(t *testing.T) {
	h := &Handler{logger: zap.NewNop(), rec: &metricsapp.Recorder{}}
	r := httptest.NewRequest("POST", "/tus/", nil)
	r.Header.Set("Upload-Draft-Interop-Version", "6")
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	w := httptest.NewRecorder()
	err := h.ServeHTTP(w, r, nil)
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized || w.Header().Get("Tus-Resumable") != "" {
		t.Errorf("err = %v, Tus-Resumable %q: want a 401 HandlerError without the tus header", err, w.Header().Get("Tus-Resumable"))
	}
}

func TestValidate(t *testing.T) {
	for name, h := range map[string]Handler{
		"small part":                   {PartSize: 1 << 20},
		"negative ttl":                 {UploadTTL: -1},
		"negative quota":               {MaxOpenUploads: -1},
		"memory below one part":        {MemoryLimit: 4 << 20},
		"negative memory wait":         {MemoryWait: -1},
		"janitor younger than the ttl": {UploadTTL: caddy.Duration(time.Hour), Janitor: &shared.JanitorConfig{MaxAge: caddy.Duration(time.Minute)}},
		"no bucket":                    {},
	} {
		h.Encryption = "none"
		if name != "no bucket" {
			h.Bucket = "b"
		}
		if err := h.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
}
