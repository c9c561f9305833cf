package jwtauth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/caddy-upload-gateway/upload-gateway/internal/jwtauth"
)

// A remembered signature must never outlive the key it was checked with,
// and claims must still be checked on every call.
func TestSignatureCacheFollowsKeysAndExpiry(t *testing.T) {
	t.Parallel()
	const issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Cache"
	issuerKey := readKey(t, "rsa_issuer.pem")
	otherKey := readKey(t, "rsa_attacker.pem")
	keys := &staticKeys{set: keySet(t, publicJWK(t, issuerKey, "k1", "RS256"))}
	clock := newFakeClock(baseTime)
	v, err := jwtauth.New(jwtauth.Config{
		Issuer:             issuer,
		Audiences:          []string{clientID},
		Keys:               keys,
		RefreshInterval:    time.Minute,
		MinRefreshInterval: time.Second,
		Now:                clock.Now,
	})
	must(t, err)
	ctx := context.Background()
	tok := sign(t, jwa.RS256, issuerKey, map[string]any{"kid": "k1"}, idClaims(issuer, baseTime))
	for i := range 3 {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("verify #%d: %v", i, err)
		}
	}

	// The issuer's JWKS now holds a different key under the same kid: the
	// remembered signature must not be trusted any more.
	keys.set = keySet(t, publicJWK(t, otherKey, "k1", "RS256"))
	clock.Advance(2 * time.Minute) // the set is stale: the next Verify refreshes it
	if _, err := v.Verify(ctx, tok); jwtauth.Reason(err) != jwtauth.ReasonBadSignature {
		t.Fatalf("after the key changed: err = %v (reason %q), want bad_signature", err, jwtauth.Reason(err))
	}

	// Back to the issuer's key: valid again, and expiry still applies to a
	// token whose signature is remembered.
	keys.set = keySet(t, publicJWK(t, issuerKey, "k1", "RS256"))
	clock.Advance(2 * time.Minute)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("with the issuer's key again: %v", err)
	}
	clock.Advance(2 * time.Hour)
	if _, err := v.Verify(ctx, tok); !errors.Is(err, jwtauth.ErrTokenExpired) {
		t.Fatalf("after expiry: err = %v, want ErrTokenExpired", err)
	}
}

// One verifier reads both token kinds when the caller says which it wants.
func TestVerifyTokenUse(t *testing.T) {
	t.Parallel()
	const issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Use"
	key := readKey(t, "rsa_issuer.pem")
	v, err := jwtauth.New(jwtauth.Config{
		Issuer: issuer, Audiences: []string{clientID}, TokenUse: jwtauth.TokenUseAccess,
		Keys: &staticKeys{set: keySet(t, publicJWK(t, key, "k1", "RS256"))},
		Now:  newFakeClock(baseTime).Now,
	})
	must(t, err)
	idToken := sign(t, jwa.RS256, key, map[string]any{"kid": "k1"}, idClaims(issuer, baseTime))
	ctx := context.Background()
	if _, err := v.Verify(ctx, idToken); jwtauth.Reason(err) != jwtauth.ReasonBadTokenUse {
		t.Errorf("Verify of an id token with TokenUse access: %v, want bad_token_use", err)
	}
	c, err := v.VerifyTokenUse(ctx, idToken, jwtauth.TokenUseID)
	if err != nil || c.TokenUse != "id" || c.Email != "alice@example.com" {
		t.Errorf("VerifyTokenUse(id) = %+v, %v", c, err)
	}
	if _, err := v.VerifyTokenUse(ctx, idToken, "refresh"); err == nil {
		t.Errorf("VerifyTokenUse accepted an unknown token use")
	}
}
