package jwtauth_test

import (
	"context"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/caddy-upload-gateway/upload-gateway/internal/jwtauth"
)

// benchVerify measures Verify on a valid id token with the key set cached.
// With the signature cache (the default), repeated tokens skip the
// public-key operation; disable it to measure the full verification.
func benchVerify(b *testing.B, alg jwa.SignatureAlgorithm, keyFile string, noCache bool) {
	priv := readKey(b, keyFile)
	const issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Bench"
	v, err := jwtauth.New(jwtauth.Config{
		Issuer:     issuer,
		Audiences:  []string{clientID},
		Algorithms: []string{alg.String()},
		Keys:       &staticKeys{set: keySet(b, publicJWK(b, priv, "bench", alg.String()))},
		Now:        newFakeClock(baseTime).Now,

		DisableSignatureCache: noCache,
	})
	must(b, err)
	tok := sign(b, alg, priv, map[string]any{"kid": "bench"}, idClaims(issuer, baseTime))
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil { // load the key set
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B)            { benchVerify(b, jwa.RS256, "rsa_issuer.pem", true) }
func BenchmarkVerifyES256(b *testing.B)       { benchVerify(b, jwa.ES256, "ec_issuer.pem", true) }
func BenchmarkVerifyCached(b *testing.B)      { benchVerify(b, jwa.RS256, "rsa_issuer.pem", false) }
func BenchmarkVerifyES256Cached(b *testing.B) { benchVerify(b, jwa.ES256, "ec_issuer.pem", false) }
