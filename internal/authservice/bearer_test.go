package authservice

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/internal/csrf"
	"github.com/caddy-upload-gateway/upload-gateway/internal/jwtauth"
)

func TestEmailVerifiedClaim(t *testing.T) {
	tests := []struct {
		claim any
		want  bool
	}{
		{true, true}, {"true", true}, {false, false}, {"false", false}, {nil, false}, {1, false}, {"yes", false},
	}
	for _, tt := range tests {
		claims := map[string]any{}
		if tt.claim != nil {
			claims["email_verified"] = tt.claim
		}
		if got := emailVerified(claims); got != tt.want {
			t.Errorf("email_verified %#v: %v, want %v", tt.claim, got, tt.want)
		}
	}
}

// tokenVerifier accepts the token "good" and fails others with err.
type tokenVerifier struct{ err error }

func (v tokenVerifier) Verify(_ context.Context, token string) (*jwtauth.Claims, error) {
	if token != "good" {
		return nil, v.err
	}
	return &jwtauth.Claims{Subject: "u1", TokenUse: "id", All: map[string]any{"cognito:groups": []any{"viewer"}, "email_verified": "true"}}, nil
}

// A refused bearer token gets its status, challenge and reason from one
// place.
func TestAuthenticateAndRefuse(t *testing.T) {
	keysDown := fmt.Errorf("%w: timeout", jwtauth.ErrKeysUnavailable)
	tests := []struct {
		name, header string
		verifyErr    error
		wantStatus   int // 0: authenticated
		wantCode     string
		wantAuth     string
		wantReason   string
		attack       bool
	}{
		{"valid", "Bearer good", nil, 0, "", "", "", false},
		{"scheme in any case", "bearer  good ", nil, 0, "", "", "", false},
		{"no header", "", nil, 401, "UNAUTHENTICATED", `Bearer realm="upload-gateway"`, "missing_token", false},
		{"basic", "Basic Zm9vOmJhcg==", nil, 401, "UNAUTHENTICATED", `Bearer realm="upload-gateway"`, "missing_token", false},
		{"empty token", "Bearer  ", nil, 401, "UNAUTHENTICATED", `Bearer realm="upload-gateway"`, "missing_token", false},
		{"invalid", "Bearer bad", jwtauth.ErrTokenInvalid, 401, "INVALID_TOKEN", `Bearer realm="upload-gateway", error="invalid_token"`, jwtauth.Reason(jwtauth.ErrTokenInvalid), false},
		{"keys unavailable", "Bearer bad", keysDown, 502, "IDENTITY_PROVIDER_UNAVAILABLE", "", jwtauth.Reason(keysDown), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			p, err := (&Checker{Verifier: tokenVerifier{tt.verifyErr}}).Authenticate(r)
			if tt.wantStatus == 0 {
				if err != nil || p.ID != "u1" || p.Role != "viewer" || !p.EmailVerified {
					t.Fatalf("Authenticate: %+v, %v", p, err)
				}
				return
			}
			w := httptest.NewRecorder()
			if status := Refuse(w, err); status != tt.wantStatus || w.Code != status {
				t.Errorf("status %d (written %d), want %d", status, w.Code, tt.wantStatus)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.wantAuth {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.wantAuth)
			}
			if reason, attack := Rejection(err); reason != tt.wantReason || attack != tt.attack {
				t.Errorf("Rejection %q %v, want %q %v", reason, attack, tt.wantReason, tt.attack)
			}
		})
	}
}

// A refusal is readable by a page of an allowed origin (CORS headers with
// credentials), and by no other.
func TestAllowOrigin(t *testing.T) {
	origins, err := csrf.New([]string{"https://app.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, origin, want string
	}{
		{"allowed origin", "https://app.example.com", "https://app.example.com"},
		{"allowed origin, other case", "HTTPS://APP.example.com", "HTTPS://APP.example.com"},
		{"another origin", "https://evil.example.com", ""},
		{"no origin", "", ""},
		{"null", "null", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/files", nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			w := httptest.NewRecorder()
			Checker{Origins: origins}.AllowOrigin(w, r)
			h := w.Header()
			if got := h.Get("Access-Control-Allow-Origin"); got != tt.want {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tt.want)
			}
			if tt.want != "" && (h.Get("Access-Control-Allow-Credentials") != "true" || h.Get("Vary") != "Origin" || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "WWW-Authenticate")) {
				t.Errorf("headers %v", h)
			}
		})
	}
}
