package jwtauth_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/caddy-upload-gateway/upload-gateway/internal/jwtauth"
)

// TestAttackCorpus feeds hostile and borderline tokens to a Verifier whose
// keys come from an in-process JWKS server, and checks that each is rejected
// with the expected reason (or accepted, when want is ""). Every case gets
// a fresh Verifier whose key set was loaded more than MinRefreshInterval
// ago, so an unknown kid may trigger exactly one refresh; the number of
// JWKS requests each case causes is checked too.
func TestAttackCorpus(t *testing.T) {
	t.Parallel()
	issuerRSA := readKey(t, "rsa_issuer.pem")
	rotatedRSA := readKey(t, "rsa_rotated.pem")
	attackerRSA := readKey(t, "rsa_attacker.pem")
	issuerEC := readKey(t, "ec_issuer.pem")
	attackerEC := readKey(t, "ec_attacker.pem")

	// The served key set: the issuer's RSA and EC keys with their alg, an
	// RSA key without alg, and an RSA key labelled RS384.
	srv := newJWKSServer(t,
		publicJWK(t, issuerRSA, "issuer-rsa", "RS256"),
		publicJWK(t, issuerEC, "issuer-ec", "ES256"),
		publicJWK(t, rotatedRSA, "no-alg-rsa", ""),
		publicJWK(t, attackerRSA, "rs384-labelled", "RS384"), // the kid exists; the alg is the point
	)
	iss := srv.issuer()
	now := baseTime
	id := idClaims(iss, now)
	access := accessClaims(iss, now)
	kidHdr := func(kid string) map[string]any { return map[string]any{"kid": kid} }
	rs := func(claims map[string]any) string { return sign(t, jwa.RS256, issuerRSA, kidHdr("issuer-rsa"), claims) }

	// The attacker's own JWKS server, to catch any fetch of jku/x5u.
	var attackerHits atomic.Int64
	attackerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		body, _ := json.Marshal(keySet(t, publicJWK(t, attackerRSA, "issuer-rsa", "RS256")))
		_, _ = w.Write(body)
	}))
	t.Cleanup(attackerSrv.Close)
	attackerJWK := publicJWK(t, attackerRSA, "attacker", "RS256")

	// Key confusion: the issuer's public key bytes as an HMAC secret.
	pubDER, err := x509.MarshalPKIXPublicKey(issuerRSA.Public())
	must(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(issuerRSA.Public().(*rsa.PublicKey))})

	valid := rs(id)
	parts := strings.Split(valid, ".")
	evil := rs(with(id, "sub", "mallory", "cognito:groups", []string{"admins"}))
	evilParts := strings.Split(evil, ".")

	generalJSON, err := jws.Sign([]byte(`{"sub":"x"}`), jws.WithJSON(), jws.WithKey(jwa.RS256, issuerRSA, jws.WithProtectedHeaders(mustHeaders(t, "kid", "issuer-rsa"))))
	must(t, err)
	flatJSON, _ := json.Marshal(map[string]string{"protected": parts[0], "payload": parts[1], "signature": parts[2]})

	tests := []struct {
		name     string
		token    string
		tokenUse string // Config.TokenUse, default "id"
		want     string // reason; "" means accepted
		refetch  bool   // the token should cause one JWKS refresh
		header   string // a header member the token must carry (checks the test itself)
	}{
		// Sanity: what must pass.
		{name: "valid RS256 id token", token: valid},
		{name: "valid ES256 id token", token: sign(t, jwa.ES256, issuerEC, kidHdr("issuer-ec"), id)},
		{name: "valid access token", token: rs(access), tokenUse: "access"},
		{name: "key without alg verifies an allowed alg of its type", token: sign(t, jwa.RS256, rotatedRSA, kidHdr("no-alg-rsa"), id)},
		{name: "aud array containing the client", token: rs(with(id, "aud", []string{"other", clientID}))},

		// alg "none" and friends.
		{name: "alg none without kid", token: rawToken(t, map[string]any{"alg": "none"}, id, ""), want: "bad_alg"},
		{name: "alg none with valid kid", token: rawToken(t, map[string]any{"alg": "none", "kid": "issuer-rsa"}, id, ""), want: "bad_alg"},
		{name: "alg none with a copied signature", token: rawToken(t, map[string]any{"alg": "none", "kid": "issuer-rsa"}, id, parts[2]), want: "bad_alg"},
		{name: "alg None", token: rawToken(t, map[string]any{"alg": "None", "kid": "issuer-rsa"}, id, ""), want: "bad_alg"},
		{name: "alg lower-case rs256", token: rawToken(t, map[string]any{"alg": "rs256", "kid": "issuer-rsa"}, id, parts[2]), want: "bad_alg"},
		{name: "alg missing", token: rawToken(t, map[string]any{"kid": "issuer-rsa"}, id, parts[2]), want: "bad_alg"},
		{name: "alg not a string", token: rawToken(t, map[string]any{"alg": 256, "kid": "issuer-rsa"}, id, parts[2]), want: "malformed"},

		// HMAC key confusion.
		{name: "HS256 keyed with the issuer's PKIX PEM", token: sign(t, jwa.HS256, pubPEM, kidHdr("issuer-rsa"), id), want: "bad_alg"},
		{name: "HS256 keyed with the issuer's PKCS#1 PEM", token: sign(t, jwa.HS256, pkcs1PEM, kidHdr("issuer-rsa"), id), want: "bad_alg"},
		{name: "HS256 keyed with the issuer's DER", token: sign(t, jwa.HS256, pubDER, kidHdr("issuer-rsa"), id), want: "bad_alg"},
		{name: "HS512 keyed with the issuer's PEM", token: sign(t, jwa.HS512, pubPEM, kidHdr("issuer-rsa"), id), want: "bad_alg"},

		// Wrong keys and kids.
		{name: "RS256 by another key with the issuer's kid", token: sign(t, jwa.RS256, attackerRSA, kidHdr("issuer-rsa"), id), want: "bad_signature"},
		{name: "ES256 by another key with the issuer's kid", token: sign(t, jwa.ES256, attackerEC, kidHdr("issuer-ec"), id), want: "bad_signature"},
		{name: "kid not in the JWKS", token: sign(t, jwa.RS256, attackerRSA, kidHdr("attacker"), id), want: "unknown_kid", refetch: true},
		{name: "no kid", token: sign(t, jwa.RS256, issuerRSA, nil, id), want: "unknown_kid"},
		{name: "JWKS key alg RS384, header RS256", token: sign(t, jwa.RS256, attackerRSA, kidHdr("rs384-labelled"), id), want: "bad_alg"},
		{name: "ES256 header on an RSA key without alg", token: sign(t, jwa.ES256, issuerEC, kidHdr("no-alg-rsa"), id), want: "bad_alg"},
		{name: "RS256 header on the ES256 key", token: sign(t, jwa.RS256, attackerRSA, kidHdr("issuer-ec"), id), want: "bad_alg"},
		{name: "RS512 is not in Algorithms", token: sign(t, jwa.RS512, issuerRSA, kidHdr("issuer-rsa"), id), want: "bad_alg"},
		{name: "PS256 is not in Algorithms", token: sign(t, jwa.PS256, issuerRSA, kidHdr("issuer-rsa"), id), want: "bad_alg"},

		// Embedded keys and key URLs are ignored.
		{name: "embedded jwk of the attacker, issuer kid", token: sign(t, jwa.RS256, attackerRSA, map[string]any{"kid": "issuer-rsa", "jwk": attackerJWK}, id), want: "bad_signature", header: "jwk"},
		{name: "embedded jwk of the attacker, its own kid", token: sign(t, jwa.RS256, attackerRSA, map[string]any{"kid": "attacker", "jwk": attackerJWK}, id), want: "unknown_kid", refetch: true, header: "jwk"},
		{name: "jku to the attacker's JWKS", token: sign(t, jwa.RS256, attackerRSA, map[string]any{"kid": "issuer-rsa", "jku": attackerSrv.URL}, id), want: "bad_signature", header: "jku"},
		{name: "x5u to the attacker", token: sign(t, jwa.RS256, attackerRSA, map[string]any{"kid": "issuer-rsa", "x5u": attackerSrv.URL}, id), want: "bad_signature", header: "x5u"},
		{name: "crit header", token: sign(t, jwa.RS256, issuerRSA, map[string]any{"kid": "issuer-rsa", "crit": []string{"exp"}, "exp": 1}, id), want: "malformed", header: "crit"},

		// Signature and payload tampering.
		{name: "tampered payload", token: parts[0] + "." + evilParts[1] + "." + parts[2], want: "bad_signature"},
		{name: "signature stripped", token: parts[0] + "." + parts[1] + ".", want: "bad_signature"},
		{name: "signature truncated", token: parts[0] + "." + parts[1] + "." + parts[2][4:], want: "bad_signature"},
		{name: "payload is not an object", token: sign(t, jwa.RS256, issuerRSA, kidHdr("issuer-rsa"), nil), want: "malformed"},

		// Time claims.
		{name: "expired beyond leeway", token: rs(with(id, "exp", now.Add(-31*time.Second).Unix())), want: "expired"},
		{name: "expired at the leeway edge", token: rs(with(id, "exp", now.Add(-30*time.Second).Unix())), want: "expired"},
		{name: "exp within leeway", token: rs(with(id, "exp", now.Add(-20*time.Second).Unix()))},
		{name: "exp zero", token: rs(with(id, "exp", 0)), want: "expired"},
		{name: "exp negative", token: rs(with(id, "exp", -1)), want: "expired"},
		{name: "exp as a string", token: rs(with(id, "exp", "9999999999")), want: "malformed"},
		{name: "exp huge", token: rs(with(id, "exp", 1e300)), want: "malformed"},
		{name: "missing exp", token: rs(with(id, "exp", nil)), want: "missing_claim"},
		{name: "nbf beyond leeway", token: rs(with(id, "nbf", now.Add(31*time.Second).Unix())), want: "not_yet_valid"},
		{name: "nbf within leeway", token: rs(with(id, "nbf", now.Add(20*time.Second).Unix()))},
		{name: "iat beyond leeway", token: rs(with(id, "iat", now.Add(time.Minute).Unix())), want: "not_yet_valid"},

		// Issuer.
		{name: "wrong iss", token: rs(with(id, "iss", "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other")), want: "bad_issuer"},
		{name: "iss with trailing slash", token: rs(with(id, "iss", iss+"/")), want: "bad_issuer"},
		{name: "missing iss", token: rs(with(id, "iss", nil)), want: "missing_claim"},
		{name: "iss not a string", token: rs(with(id, "iss", []string{iss})), want: "malformed"},

		// Audience and token use.
		{name: "wrong aud (id token)", token: rs(with(id, "aud", "client-2")), want: "bad_audience"},
		{name: "aud array without the client", token: rs(with(id, "aud", []string{"client-2", "client-3"})), want: "bad_audience"},
		{name: "missing aud (id token)", token: rs(with(id, "aud", nil)), want: "missing_claim"},
		{name: "wrong client_id (access token)", token: rs(with(access, "client_id", "client-2")), tokenUse: "access", want: "bad_audience"},
		{name: "access token with aud but no client_id", token: rs(with(access, "client_id", nil, "aud", clientID)), tokenUse: "access", want: "missing_claim"},
		{name: "id token where access is required", token: rs(id), tokenUse: "access", want: "bad_token_use"},
		{name: "access token where id is required", token: rs(access), tokenUse: "id", want: "bad_token_use"},
		{name: "missing token_use", token: rs(with(id, "token_use", nil)), want: "missing_claim"},
		{name: "missing token_use with any", token: rs(with(id, "token_use", nil)), tokenUse: "any", want: "missing_claim"},
		{name: "token_use refresh with any", token: rs(with(id, "token_use", "refresh")), tokenUse: "any", want: "bad_token_use"},
		{name: "missing sub", token: rs(with(id, "sub", nil)), want: "missing_claim"},

		// Size and shape.
		{name: "oversized token", token: rs(with(id, "pad", strings.Repeat("a", 9000))), want: "too_large"},
		{name: "empty", token: "", want: "malformed"},
		{name: "garbage", token: "not a token at all", want: "malformed"},
		{name: "one segment", token: parts[0], want: "malformed"},
		{name: "two segments", token: parts[0] + "." + parts[1], want: "malformed"},
		{name: "four segments", token: valid + "." + parts[2], want: "malformed"},
		{name: "empty header", token: "." + parts[1] + "." + parts[2], want: "malformed"},
		{name: "base64 padding", token: parts[0] + "." + parts[1] + "." + parts[2] + "==", want: "malformed"},
		{name: "standard base64 alphabet", token: parts[0] + "." + parts[1] + "+/." + parts[2], want: "malformed"},
		{name: "Bearer prefix left on", token: "Bearer " + valid, want: "malformed"},
		{name: "trailing newline", token: valid + "\n", want: "malformed"},
		{name: "CRLF inside the signature", token: parts[0] + "." + parts[1] + "." + parts[2][:40] + "\r\n" + parts[2][40:], want: "malformed"},
		{name: "header not JSON", token: "bm90IGpzb24." + parts[1] + "." + parts[2], want: "malformed"},
		{name: "JWS JSON serialization (general)", token: string(generalJSON), want: "malformed"},
		{name: "JWS JSON serialization (flattened)", token: string(flatJSON), want: "malformed"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.header != "" {
				msg, err := jws.Parse([]byte(tt.token))
				must(t, err)
				if _, ok := msg.Signatures()[0].ProtectedHeaders().Get(tt.header); !ok {
					t.Fatalf("test token lacks the %q header", tt.header)
				}
			}
			clock := newFakeClock(now.Add(-jwtauth.DefaultMinRefreshInterval - time.Second))
			v, err := jwtauth.New(jwtauth.Config{
				Issuer:     iss,
				HTTPClient: srv.Client(),
				Audiences:  []string{clientID},
				TokenUse:   tt.tokenUse,
				Algorithms: []string{"RS256", "RS384", "ES256"},
				Now:        clock.Now,
			})
			must(t, err)
			ctx := context.Background()
			if _, err := v.Verify(ctx, valid); errors.Is(err, jwtauth.ErrKeysUnavailable) { // load the key set
				t.Fatalf("priming: %v", err)
			}
			clock.Set(now)
			hitsBefore, attackerBefore := srv.hits.Load(), attackerHits.Load()

			claims, err := v.Verify(ctx, tt.token)

			if got := jwtauth.Reason(err); got != tt.want {
				t.Fatalf("Reason = %q, want %q (err: %v)", got, tt.want, err)
			}
			wantFetches := int64(0)
			if tt.refetch {
				wantFetches = 1
			}
			if got := srv.hits.Load() - hitsBefore; got != wantFetches {
				t.Errorf("JWKS fetches = %d, want %d", got, wantFetches)
			}
			if got := attackerHits.Load() - attackerBefore; got != 0 {
				t.Errorf("attacker's server got %d requests", got)
			}
			if tt.want == "" {
				if err != nil || claims == nil {
					t.Fatalf("Verify = %v, %v; want claims", claims, err)
				}
				return
			}
			if claims != nil {
				t.Errorf("Verify returned claims with error %v", err)
			}
			if !errors.Is(err, jwtauth.ErrTokenInvalid) {
				t.Errorf("errors.Is(err, ErrTokenInvalid) = false for %v", err)
			}
			if got, want := errors.Is(err, jwtauth.ErrTokenExpired), tt.want == "expired"; got != want {
				t.Errorf("errors.Is(err, ErrTokenExpired) = %v, want %v", got, want)
			}
			if errors.Is(err, jwtauth.ErrKeysUnavailable) {
				t.Errorf("errors.Is(err, ErrKeysUnavailable) = true for %v", err)
			}
			msg := err.Error()
			for _, seg := range strings.FieldsFunc(tt.token, func(r rune) bool { return r == '.' || r == ' ' }) {
				if len(seg) >= 8 && strings.Contains(msg, seg) {
					t.Errorf("error message echoes the token: %q", msg)
				}
			}
		})
	}
}

func mustHeaders(t testing.TB, kv ...string) jws.Headers {
	t.Helper()
	h := jws.NewHeaders()
	for i := 0; i < len(kv); i += 2 {
		must(t, h.Set(kv[i], kv[i+1]))
	}
	return h
}
