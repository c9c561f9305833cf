package jwtauth_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// poolPath mimics Cognito's and cognito-local's layout: the issuer is
// <base>/<poolId> and the key set is at <issuer>/.well-known/jwks.json.
const (
	poolPath = "/us-east-1_Test"
	clientID = "client-1"
)

// baseTime is the fake "now" of most tests.
var baseTime = time.Unix(1_750_000_000, 0)

// readKey reads a PKCS#8 PEM private key from testdata.
func readKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM block", name)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return key.(crypto.Signer)
}

// publicJWK returns the public JWK of key with the given kid and, unless
// empty, alg.
func publicJWK(t testing.TB, key crypto.Signer, kid, alg string) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	must(t, k.Set(jwk.KeyIDKey, kid))
	must(t, k.Set(jwk.KeyUsageKey, "sig"))
	if alg != "" {
		must(t, k.Set(jwk.AlgorithmKey, alg))
	}
	return k
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func keySet(t testing.TB, keys ...jwk.Key) jwk.Set {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		must(t, set.AddKey(k))
	}
	return set
}

// sign builds a compact JWS over the JSON encoding of claims, with hdr as
// extra protected headers (alg is set by jws.Sign).
func sign(t testing.TB, alg jwa.SignatureAlgorithm, key any, hdr map[string]any, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	must(t, err)
	h := jws.NewHeaders()
	for k, v := range hdr {
		must(t, h.Set(k, v))
	}
	tok, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	must(t, err)
	return string(tok)
}

// rawToken assembles header.payload.signature from raw JSON values, for
// tokens jws.Sign refuses to build.
func rawToken(t testing.TB, hdr map[string]any, claims map[string]any, sig string) string {
	t.Helper()
	h, err := json.Marshal(hdr)
	must(t, err)
	p, err := json.Marshal(claims)
	must(t, err)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(p) + "." + sig
}

func idClaims(issuer string, now time.Time) map[string]any {
	return map[string]any{
		"iss":              issuer,
		"sub":              "6f1c2a3e-1111-2222-3333-444455556666",
		"aud":              clientID,
		"token_use":        "id",
		"exp":              now.Add(time.Hour).Unix(),
		"iat":              now.Unix(),
		"auth_time":        now.Unix(),
		"cognito:username": "alice",
		"email":            "alice@example.com",
		"cognito:groups":   []string{"uploaders", "viewers"},
	}
}

func accessClaims(issuer string, now time.Time) map[string]any {
	return map[string]any{
		"iss":       issuer,
		"sub":       "6f1c2a3e-1111-2222-3333-444455556666",
		"client_id": clientID,
		"token_use": "access",
		"scope":     "aws.cognito.signin.user.admin",
		"exp":       now.Add(time.Hour).Unix(),
		"iat":       now.Unix(),
		"username":  "alice",
	}
}

// with returns a copy of m with the given changes; a nil value deletes.
func with(m map[string]any, kv ...any) map[string]any {
	out := maps.Clone(m)
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
		} else {
			out[k] = kv[i+1]
		}
	}
	return out
}

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *fakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// jwksServer serves a JWKS at poolPath/.well-known/jwks.json in process
// (see Client) and counts requests. Its key set, status and latency can
// change during a test. Having no listener, it works inside a synctest
// bubble, where its latency runs on the bubble's clock.
type jwksServer struct {
	URL     string
	handler http.Handler
	body    atomic.Pointer[[]byte]
	status  atomic.Int32
	delay   atomic.Int64 // nanoseconds
	hits    atomic.Int64
	down    atomic.Bool
}

func newJWKSServer(t testing.TB, keys ...jwk.Key) *jwksServer {
	t.Helper()
	s := &jwksServer{URL: "http://jwks.test"}
	stop := make(chan struct{}) // releases delayed handlers at cleanup
	s.status.Store(http.StatusOK)
	s.serve(t, keys...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+poolPath+"/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if d := time.Duration(s.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			case <-stop:
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(s.status.Load()))
		_, _ = w.Write(*s.body.Load())
	})
	s.handler = mux
	t.Cleanup(func() { close(stop) })
	return s
}

// Client returns an HTTP client whose requests s's handler answers
// directly, without a network.
func (s *jwksServer) Client() *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if s.down.Load() {
			return nil, errors.New("connection refused")
		}
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, r)
		if err := r.Context().Err(); err != nil {
			return nil, err
		}
		return rec.Result(), nil
	})}
}

// Close makes the server unreachable.
func (s *jwksServer) Close() { s.down.Store(true) }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// serve replaces the served key set.
func (s *jwksServer) serve(t testing.TB, keys ...jwk.Key) {
	t.Helper()
	body, err := json.Marshal(keySet(t, keys...))
	must(t, err)
	s.serveRaw(body)
}

func (s *jwksServer) serveRaw(body []byte) { s.body.Store(&body) }

func (s *jwksServer) issuer() string { return s.URL + poolPath }

// staticKeys is a KeySource returning a fixed set and counting calls.
type staticKeys struct {
	set   jwk.Set
	err   error
	calls atomic.Int64
}

func (s *staticKeys) Keys(context.Context) (jwk.Set, error) {
	s.calls.Add(1)
	return s.set, s.err
}
