package fileapi

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
)

// TestLimits checks what GET /files/limits tells a page: the configured
// sizes and type patterns, and the multipart threshold (the smaller of the
// part size and the single-upload limit); every signed-in role may ask,
// nobody else.
func TestLimits(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want Limits
	}{
		{"defaults", nil, Limits{
			MaxSingleSize: DefaultMaxSingleSize, MaxFileSize: DefaultMaxFileSize, PartSize: DefaultPartSize,
			AllowedTypes:       []string{"application/pdf", "image/*", "text/plain"},
			MultipartThreshold: DefaultPartSize,
		}},
		{"small single uploads, every type", func(c *Config) {
			c.MaxSingleSize, c.MaxFileSize, c.DefaultPartSize, c.Types = 1<<20, 1<<30, 8<<20, nil
		}, Limits{
			MaxSingleSize: 1 << 20, MaxFileSize: 1 << 30, PartSize: 8 << 20,
			AllowedTypes: []string{}, MultipartThreshold: 1 << 20,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []func(*Config)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			e := newEnv(t, mods...)
			for _, user := range []policy.Subject{vic, alice, ada} {
				res := e.do(t, &user, http.MethodGet, "/files/limits", nil)
				expect(t, res, http.StatusOK, "")
				var got Limits
				res.data(t, &got)
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("%s: limits %+v, want %+v", user.ID, got, tt.want)
				}
			}
			expect(t, e.do(t, nil, http.MethodGet, "/files/limits", nil), http.StatusUnauthorized, "")
			if len(e.store.calls) != 0 {
				t.Errorf("S3 calls %q, want none", e.store.calls)
			}
		})
	}
}
