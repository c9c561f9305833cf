package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/caddy-upload-gateway/upload-gateway/internal/jwtauth"
)

// staticKeys is a jwtauth.KeySource that always returns the same key set.
type staticKeys struct{ set jwk.Set }

func (s staticKeys) Keys(context.Context) (jwk.Set, error) { return s.set, nil }

// jwtResult is one row of the JWT table: one benchmark, several runs.
type jwtResult struct {
	name    string
	runs    []testing.BenchmarkResult
	failure string
}

// benchJWT runs testing.Benchmark on jwtauth.Verifier.Verify in-process
// with a freshly generated RSA-2048 key and a Cognito-shaped id token, with
// the signature cache (the default: the same token again costs claim checks
// only) and without it (every call verifies the RS256 signature).
func benchJWT(count int) []jwtResult {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return []jwtResult{{name: "RS256", failure: err.Error()}}
	}
	const (
		kid      = "bench-rsa"
		issuer   = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_BenchPool"
		clientID = "1example23456789bench"
	)
	pub, err := jwk.FromRaw(key.Public())
	if err == nil {
		err = errors.Join(pub.Set(jwk.KeyIDKey, kid), pub.Set(jwk.AlgorithmKey, jwa.RS256), pub.Set(jwk.KeyUsageKey, "sig"))
	}
	set := jwk.NewSet()
	if err == nil {
		err = set.AddKey(pub)
	}
	token := ""
	if err == nil {
		token, err = cognitoIDToken(key, kid, issuer, clientID)
	}
	if err != nil {
		return []jwtResult{{name: "RS256", failure: err.Error()}}
	}

	var out []jwtResult
	for _, c := range []struct {
		name    string
		noCache bool
	}{
		{"Verify RS256, signature cache on (default; the same token again)", false},
		{"Verify RS256, DisableSignatureCache (signature verified every call)", true},
	} {
		row := jwtResult{name: c.name}
		v, err := jwtauth.New(jwtauth.Config{
			Issuer:                issuer,
			Audiences:             []string{clientID},
			Algorithms:            []string{"RS256"},
			Keys:                  staticKeys{set: set},
			DisableSignatureCache: c.noCache,
		})
		if err == nil {
			_, err = v.Verify(context.Background(), token) // loads the key set (and fills the cache)
		}
		if err != nil {
			row.failure = err.Error()
			out = append(out, row)
			continue
		}
		for range count {
			var failure error
			res := testing.Benchmark(func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := v.Verify(ctx, token); err != nil {
						failure = err
						b.FailNow()
					}
				}
			})
			if failure != nil {
				row.failure = failure.Error()
				break
			}
			row.runs = append(row.runs, res)
		}
		out = append(out, row)
	}
	return out
}

// cognitoIDToken signs an id token shaped like Cognito's: RS256 with a kid,
// and the claims a user pool puts into an id token.
func cognitoIDToken(key *rsa.PrivateKey, kid, issuer, clientID string) (string, error) {
	now := time.Now()
	sub := uuid.NewString()
	claims := map[string]any{
		"sub":              sub,
		"cognito:groups":   []string{"uploader"},
		"email_verified":   true,
		"iss":              issuer,
		"cognito:username": sub,
		"origin_jti":       uuid.NewString(),
		"aud":              clientID,
		"event_id":         uuid.NewString(),
		"token_use":        "id",
		"auth_time":        now.Unix(),
		"exp":              now.Add(time.Hour).Unix(),
		"iat":              now.Unix(),
		"jti":              uuid.NewString(),
		"email":            "bench@example.com",
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	if err := errors.Join(hdr.Set(jws.KeyIDKey, kid), hdr.Set(jws.TypeKey, "JWT")); err != nil {
		return "", err
	}
	tok, err := jws.Sign(payload, jws.WithKey(jwa.RS256, key, jws.WithProtectedHeaders(hdr)))
	return string(tok), err
}

func printJWT(rows []jwtResult, count int) {
	fmt.Printf("\nJWT validation: jwtauth.Verifier.Verify in-process (testing.Benchmark, %d runs each), fresh RSA-2048 key, Cognito-shaped id token, keys cached;\n", count)
	fmt.Println("every call checks alg, kid, iss, aud, token_use, exp, nbf, iat; the signature every call or once per token (cache)")
	fmt.Println()
	fmt.Println("| benchmark | ns/op (each run) | B/op | allocs/op | iterations |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, r := range rows {
		if r.failure != "" {
			fmt.Fprintf(os.Stderr, "bench: jwt: %s: %s\n", r.name, r.failure)
			fmt.Printf("| %s | failed: %s | | | |\n", r.name, r.failure)
			continue
		}
		var ns, iters []string
		for _, res := range r.runs {
			ns = append(ns, humanizeInt(res.NsPerOp()))
			iters = append(iters, fmt.Sprint(res.N))
		}
		last := r.runs[len(r.runs)-1]
		fmt.Printf("| %s | %s | %s | %d | %s |\n", r.name, strings.Join(ns, " / "), humanizeInt(last.AllocedBytesPerOp()), last.AllocsPerOp(), strings.Join(iters, " / "))
	}
}

// humanizeInt writes n with thousands separators: 43,791.
func humanizeInt(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
