package jwtauth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/caddy-upload-gateway/upload-gateway/internal/jwtauth"
)

func TestNew(t *testing.T) {
	t.Parallel()
	const iss = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf"
	base := jwtauth.Config{Issuer: iss, Audiences: []string{clientID}}
	tests := []struct {
		name    string
		change  func(c *jwtauth.Config)
		wantErr string // substring; "" means valid
	}{
		{"minimal", func(c *jwtauth.Config) {}, ""},
		{"all algorithms", func(c *jwtauth.Config) {
			c.Algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
		}, ""},
		{"any audience", func(c *jwtauth.Config) { c.Audiences, c.AllowAnyAudience = nil, true }, ""},
		{"access tokens", func(c *jwtauth.Config) { c.TokenUse = "access" }, ""},
		{"emulator issuer over http", func(c *jwtauth.Config) { c.Issuer = "http://127.0.0.1:9229/local_pool" }, ""},
		{"key source with a non-URL issuer", func(c *jwtauth.Config) { c.Issuer, c.Keys = "gateway", &staticKeys{} }, ""},
		{"missing issuer", func(c *jwtauth.Config) { c.Issuer = "" }, "issuer is required"},
		{"alg none", func(c *jwtauth.Config) { c.Algorithms = []string{"RS256", "none"} }, "not allowed"},
		{"alg HS256", func(c *jwtauth.Config) { c.Algorithms = []string{"HS256"} }, "not allowed"},
		{"alg hs512", func(c *jwtauth.Config) { c.Algorithms = []string{"hs512"} }, "not allowed"},
		{"alg unknown", func(c *jwtauth.Config) { c.Algorithms = []string{"RS1"} }, "unsupported algorithm"},
		{"alg wrong case", func(c *jwtauth.Config) { c.Algorithms = []string{"rs256"} }, "unsupported algorithm"},
		{"token use refresh", func(c *jwtauth.Config) { c.TokenUse = "refresh" }, "token_use"},
		{"no audience", func(c *jwtauth.Config) { c.Audiences = nil }, "audience"},
		{"empty audience", func(c *jwtauth.Config) { c.Audiences = []string{""} }, "empty audience"},
		{"audiences and any audience", func(c *jwtauth.Config) { c.AllowAnyAudience = true }, "mutually exclusive"},
		{"negative leeway", func(c *jwtauth.Config) { c.Leeway = -time.Second }, "leeway"},
		{"negative max token bytes", func(c *jwtauth.Config) { c.MaxTokenBytes = -1 }, "max token bytes"},
		{"min refresh above refresh", func(c *jwtauth.Config) { c.RefreshInterval = 5 * time.Second }, "exceeds"},
		{"jwks url not http", func(c *jwtauth.Config) { c.JWKSURL = "file:///etc/jwks.json" }, "jwks url"},
		{"issuer not a URL and no jwks url", func(c *jwtauth.Config) { c.Issuer = "cognito" }, "jwks url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := base
			cfg.Audiences = append([]string(nil), base.Audiences...)
			tt.change(&cfg)
			v, err := jwtauth.New(cfg)
			if tt.wantErr == "" {
				if err != nil || v == nil {
					t.Fatalf("New = %v, %v; want a Verifier", v, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestVerifyClaims(t *testing.T) {
	t.Parallel()
	priv := readKey(t, "rsa_issuer.pem")
	srv := newJWKSServer(t, publicJWK(t, priv, "issuer-rsa", "RS256"), publicJWK(t, priv, "CognitoLocal", "RS256"))
	iss := srv.issuer()
	exp := baseTime.Add(time.Hour).Truncate(time.Second)

	tests := []struct {
		name   string
		config jwtauth.Config // Issuer and Now are filled in
		kid    string
		claims map[string]any
		want   jwtauth.Claims // All is not compared
	}{
		{
			name:   "Cognito id token",
			config: jwtauth.Config{Audiences: []string{clientID}},
			claims: idClaims(iss, baseTime),
			want: jwtauth.Claims{
				Subject: "6f1c2a3e-1111-2222-3333-444455556666", Username: "alice", Email: "alice@example.com",
				TokenUse: "id", ClientID: clientID, Issuer: iss, Groups: []string{"uploaders", "viewers"}, ExpiresAt: exp,
			},
		},
		{
			name:   "Cognito access token",
			config: jwtauth.Config{Audiences: []string{"other", clientID}, TokenUse: "access"},
			claims: with(accessClaims(iss, baseTime), "cognito:groups", []string{"admins"}),
			want: jwtauth.Claims{
				Subject: "6f1c2a3e-1111-2222-3333-444455556666", Username: "alice",
				TokenUse: "access", ClientID: clientID, Issuer: iss, Groups: []string{"admins"}, ExpiresAt: exp,
			},
		},
		{
			name:   "cognito-local id token with only the required claims",
			config: jwtauth.Config{Audiences: []string{clientID}, TokenUse: "any"},
			kid:    "CognitoLocal",
			claims: map[string]any{"iss": iss, "sub": "u1", "aud": clientID, "token_use": "id", "exp": exp.Unix()},
			want:   jwtauth.Claims{Subject: "u1", TokenUse: "id", ClientID: clientID, Issuer: iss, ExpiresAt: exp},
		},
		{
			name:   "any audience, no aud",
			config: jwtauth.Config{AllowAnyAudience: true},
			claims: with(idClaims(iss, baseTime), "aud", nil, "cognito:groups", "solo", "email", 42),
			want: jwtauth.Claims{
				Subject: "6f1c2a3e-1111-2222-3333-444455556666", Username: "alice",
				TokenUse: "id", Issuer: iss, Groups: []string{"solo"}, ExpiresAt: exp,
			},
		},
		{
			name:   "fractional exp",
			config: jwtauth.Config{Audiences: []string{clientID}},
			claims: with(idClaims(iss, baseTime), "exp", float64(exp.Unix())+0.5, "cognito:groups", nil),
			want: jwtauth.Claims{
				Subject: "6f1c2a3e-1111-2222-3333-444455556666", Username: "alice", Email: "alice@example.com",
				TokenUse: "id", ClientID: clientID, Issuer: iss, ExpiresAt: exp.Add(500 * time.Millisecond),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.config
			cfg.Issuer, cfg.HTTPClient, cfg.Now = iss, srv.Client(), newFakeClock(baseTime).Now
			v, err := jwtauth.New(cfg)
			must(t, err)
			kid := tt.kid
			if kid == "" {
				kid = "issuer-rsa"
			}
			got, err := v.Verify(context.Background(), sign(t, jwa.RS256, priv, map[string]any{"kid": kid}, tt.claims))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.All["sub"] != tt.want.Subject {
				t.Errorf("All[sub] = %v, want %q", got.All["sub"], tt.want.Subject)
			}
			got.All = nil
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("claims:\n got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"foreign error", errors.New("boom"), ""},
		{"foreign error wrapping nothing of ours", fmt.Errorf("x: %w", context.Canceled), ""},
		{"sentinel keys unavailable", jwtauth.ErrKeysUnavailable, "keys_unavailable"},
		{"sentinel expired", jwtauth.ErrTokenExpired, "expired"},
		{"sentinel invalid", jwtauth.ErrTokenInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := jwtauth.Reason(tt.err); got != tt.want {
				t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
	if !errors.Is(jwtauth.ErrTokenExpired, jwtauth.ErrTokenInvalid) {
		t.Error("ErrTokenExpired does not match ErrTokenInvalid")
	}

	// Reasons survive wrapping by callers.
	v, err := jwtauth.New(jwtauth.Config{Issuer: "gateway", Keys: &staticKeys{set: jwk.NewSet()}, AllowAnyAudience: true})
	must(t, err)
	_, verr := v.Verify(context.Background(), "x.y")
	wrapped := fmt.Errorf("authenticating: %w", verr)
	if got := jwtauth.Reason(wrapped); got != jwtauth.ReasonMalformed {
		t.Errorf("Reason(wrapped) = %q, want malformed", got)
	}
	if !errors.Is(wrapped, jwtauth.ErrTokenInvalid) {
		t.Errorf("wrapped error does not match ErrTokenInvalid")
	}
}

// TestAlgorithms verifies a token with every supported algorithm, with the
// key's alg set and with it left out (inferred from the key type).
func TestAlgorithms(t *testing.T) {
	t.Parallel()
	rsaKey := readKey(t, "rsa_issuer.pem")
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(t, err)
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	must(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	tests := []struct {
		alg jwa.SignatureAlgorithm
		key crypto.Signer
	}{
		{jwa.RS256, rsaKey}, {jwa.RS384, rsaKey}, {jwa.RS512, rsaKey},
		{jwa.PS256, rsaKey}, {jwa.PS384, rsaKey}, {jwa.PS512, rsaKey},
		{jwa.ES256, readKey(t, "ec_issuer.pem")}, {jwa.ES384, p384}, {jwa.ES512, p521},
		{jwa.EdDSA, edKey},
	}
	const issuer = "gateway"
	for _, tt := range tests {
		for _, withAlg := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/alg_in_jwk=%v", tt.alg, withAlg), func(t *testing.T) {
				t.Parallel()
				jwkAlg := ""
				if withAlg {
					jwkAlg = tt.alg.String()
				}
				v, err := jwtauth.New(jwtauth.Config{
					Issuer:     issuer,
					Audiences:  []string{clientID},
					Algorithms: []string{tt.alg.String()},
					Keys:       &staticKeys{set: keySet(t, publicJWK(t, tt.key, "k", jwkAlg))},
					Now:        newFakeClock(baseTime).Now,
				})
				must(t, err)
				tok := sign(t, tt.alg, tt.key, map[string]any{"kid": "k"}, idClaims(issuer, baseTime))
				if _, err := v.Verify(context.Background(), tok); err != nil {
					t.Fatalf("Verify: %v", err)
				}
			})
		}
	}
}
