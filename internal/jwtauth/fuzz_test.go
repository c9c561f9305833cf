package jwtauth_test

import (
	"context"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/caddy-upload-gateway/upload-gateway/internal/jwtauth"
)

// FuzzVerify feeds arbitrary bearer tokens to the verifier: it must never
// panic, must reject everything but the one token the issuer signed, and
// must give every rejection a known reason code.
func FuzzVerify(f *testing.F) {
	const issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Fuzz"
	priv := readKey(f, "rsa_issuer.pem")
	v, err := jwtauth.New(jwtauth.Config{
		Issuer:     issuer,
		Audiences:  []string{clientID},
		Keys:       &staticKeys{set: keySet(f, publicJWK(f, priv, "k1", "RS256"))},
		Now:        newFakeClock(baseTime).Now,
		Algorithms: []string{"RS256"},
	})
	if err != nil {
		f.Fatal(err)
	}
	valid := sign(f, jwa.RS256, priv, map[string]any{"kid": "k1"}, idClaims(issuer, baseTime))
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		valid,
		parts[0] + "." + parts[1] + ".",
		parts[0] + ".." + parts[2],
		"eyJhbGciOiJub25lIn0.e30.",
		"e30.e30.e30",
		"",
		".",
		"a.b.c.d",
		strings.Repeat("A", 9000),
		parts[0] + "." + parts[1] + "." + parts[2] + "\r\n",
	} {
		f.Add(seed)
	}
	known := map[string]bool{}
	for _, r := range []string{jwtauth.ReasonMalformed, jwtauth.ReasonTooLarge, jwtauth.ReasonBadAlg, jwtauth.ReasonUnknownKID,
		jwtauth.ReasonBadSignature, jwtauth.ReasonExpired, jwtauth.ReasonNotYetValid, jwtauth.ReasonBadIssuer,
		jwtauth.ReasonBadAudience, jwtauth.ReasonBadTokenUse, jwtauth.ReasonMissingClaim, jwtauth.ReasonKeysUnavailable} {
		known[r] = true
	}
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(context.Background(), token)
		if token == valid {
			if err != nil {
				t.Fatalf("the issuer's token was rejected: %v", err)
			}
			return
		}
		if err == nil {
			// Only a token carrying the issuer's signature over the same
			// header and claims can pass.
			if !strings.HasSuffix(token, "."+parts[2]) {
				t.Fatalf("accepted a token without the issuer's signature: %q -> %+v", token, claims)
			}
			return
		}
		if !known[jwtauth.Reason(err)] {
			t.Fatalf("rejection without a known reason: %v (reason %q)", err, jwtauth.Reason(err))
		}
		if len(token) > 8 && strings.Contains(err.Error(), token) {
			t.Fatalf("the error echoes the token: %v", err)
		}
	})
}
