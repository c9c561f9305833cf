package jwtauth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/caddy-upload-gateway/upload-gateway/internal/jwtauth"
)

// rotationFixture is a JWKS server, two issuer keys and a Verifier on a
// fake clock, with the key set loaded at baseTime.
type rotationFixture struct {
	srv          *jwksServer
	clock        *fakeClock
	v            *jwtauth.Verifier
	oldKey       jwk.Key
	newKey       jwk.Key
	tokOld       string // signed by oldKey
	tokNew       string // signed by newKey
	hitsAtStart  int64
	issuerClaims map[string]any
}

func newRotationFixture(t *testing.T) *rotationFixture {
	t.Helper()
	oldPriv, newPriv := readKey(t, "rsa_issuer.pem"), readKey(t, "rsa_rotated.pem")
	f := &rotationFixture{
		oldKey: publicJWK(t, oldPriv, "key-2024", "RS256"),
		newKey: publicJWK(t, newPriv, "key-2025", "RS256"),
		clock:  newFakeClock(baseTime),
	}
	f.srv = newJWKSServer(t, f.oldKey)
	f.issuerClaims = idClaims(f.srv.issuer(), baseTime)
	f.tokOld = sign(t, jwa.RS256, oldPriv, map[string]any{"kid": "key-2024"}, f.issuerClaims)
	f.tokNew = sign(t, jwa.RS256, newPriv, map[string]any{"kid": "key-2025"}, f.issuerClaims)
	v, err := jwtauth.New(jwtauth.Config{Issuer: f.srv.issuer(), HTTPClient: f.srv.Client(), Audiences: []string{clientID}, Now: f.clock.Now})
	must(t, err)
	f.v = v
	if _, err := v.Verify(context.Background(), f.tokOld); err != nil {
		t.Fatalf("priming: %v", err)
	}
	f.hitsAtStart = f.srv.hits.Load()
	return f
}

func (f *rotationFixture) fetches() int64 { return f.srv.hits.Load() - f.hitsAtStart }

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	f := newRotationFixture(t)
	ctx := context.Background()

	// The new key is not published yet, and a refresh just happened.
	if _, err := f.v.Verify(ctx, f.tokNew); jwtauth.Reason(err) != jwtauth.ReasonUnknownKID {
		t.Fatalf("before rotation: err = %v, want unknown_kid", err)
	}
	if n := f.fetches(); n != 0 {
		t.Fatalf("fetches within MinRefreshInterval = %d, want 0", n)
	}

	// The issuer publishes the new key next to the old one.
	f.srv.serve(t, f.oldKey, f.newKey)
	f.clock.Advance(jwtauth.DefaultMinRefreshInterval)
	if _, err := f.v.Verify(ctx, f.tokNew); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if n := f.fetches(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
	if _, err := f.v.Verify(ctx, f.tokOld); err != nil {
		t.Fatalf("old key during overlap: %v", err)
	}

	// The issuer retires the old key; the cache notices at the next refresh.
	f.srv.serve(t, f.newKey)
	f.clock.Advance(jwtauth.DefaultRefreshInterval)
	if _, err := f.v.Verify(ctx, f.tokNew); err != nil {
		t.Fatalf("new key after retirement: %v", err)
	}
	if _, err := f.v.Verify(ctx, f.tokOld); jwtauth.Reason(err) != jwtauth.ReasonUnknownKID {
		t.Fatalf("old key after retirement: err = %v, want unknown_kid", err)
	}
	if n := f.fetches(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
}

// TestUnknownKIDFlood checks that many tokens with unknown kids cause at
// most one JWKS fetch per MinRefreshInterval, even when concurrent.
func TestUnknownKIDFlood(t *testing.T) {
	t.Parallel()
	f := newRotationFixture(t)
	f.srv.delay.Store(int64(20 * time.Millisecond)) // make callers overlap the fetch
	attacker := readKey(t, "rsa_attacker.pem")
	tokens := make([]string, 50)
	for i := range tokens {
		tokens[i] = sign(t, jwa.RS256, attacker, map[string]any{"kid": fmt.Sprintf("forged-%d", i)}, f.issuerClaims)
	}

	flood := func() {
		t.Helper()
		var wg sync.WaitGroup
		for range 4 {
			for _, tok := range tokens {
				wg.Go(func() {
					if _, err := f.v.Verify(context.Background(), tok); jwtauth.Reason(err) != jwtauth.ReasonUnknownKID {
						t.Errorf("err = %v, want unknown_kid", err)
					}
				})
			}
		}
		wg.Wait()
	}

	steps := []struct {
		name    string
		advance time.Duration
		want    int64 // total fetches after the step
	}{
		{"right after the initial load", 0, 0},
		{"after MinRefreshInterval", jwtauth.DefaultMinRefreshInterval, 1},
		{"again within the interval", jwtauth.DefaultMinRefreshInterval / 2, 1},
		{"after another interval", jwtauth.DefaultMinRefreshInterval, 2},
	}
	for _, st := range steps {
		f.clock.Advance(st.advance)
		flood()
		if got := f.fetches(); got != st.want {
			t.Errorf("%s: fetches = %d, want %d", st.name, got, st.want)
		}
	}
}

// TestConcurrentCallersShareFetch checks that callers who see a new kid at
// the same time wait for one shared fetch and all succeed.
func TestConcurrentCallersShareFetch(t *testing.T) {
	t.Parallel()
	f := newRotationFixture(t)
	f.srv.delay.Store(int64(50 * time.Millisecond))
	f.srv.serve(t, f.oldKey, f.newKey)
	f.clock.Advance(jwtauth.DefaultMinRefreshInterval)

	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if _, err := f.v.Verify(context.Background(), f.tokNew); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
	wg.Wait()
	if n := f.fetches(); n != 1 {
		t.Errorf("fetches = %d, want 1", n)
	}
}

func TestStartRefreshesAndKeepsLastGoodSet(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		oldPriv, newPriv := readKey(t, "rsa_issuer.pem"), readKey(t, "rsa_rotated.pem")
		oldKey, newKey := publicJWK(t, oldPriv, "key-2024", "RS256"), publicJWK(t, newPriv, "key-2025", "RS256")
		srv := newJWKSServer(t, oldKey)
		claims := idClaims(srv.issuer(), time.Now())
		tokOld := sign(t, jwa.RS256, oldPriv, map[string]any{"kid": "key-2024"}, claims)
		tokNew := sign(t, jwa.RS256, newPriv, map[string]any{"kid": "key-2025"}, claims)
		const interval = 30 * time.Second
		v, err := jwtauth.New(jwtauth.Config{
			Issuer:             srv.issuer(),
			HTTPClient:         srv.Client(),
			Audiences:          []string{clientID},
			RefreshInterval:    interval,
			MinRefreshInterval: 10 * time.Second,
		})
		must(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		v.Start(ctx)
		v.Start(ctx) // idempotent

		synctest.Wait()
		if n := srv.hits.Load(); n != 1 {
			t.Fatalf("fetches after Start = %d, want 1", n)
		}
		if _, err := v.Verify(ctx, tokOld); err != nil {
			t.Fatalf("after initial fetch: %v", err)
		}

		// The issuer fails: refreshes keep failing (backing off from
		// MinRefreshInterval), the last good set stays.
		srv.status.Store(http.StatusInternalServerError)
		time.Sleep(interval + 10*time.Second + 20*time.Second + time.Second) // one failure, then 10s and 20s of backoff
		synctest.Wait()
		if n := srv.hits.Load(); n != 4 {
			t.Errorf("fetches after three failed refreshes = %d, want 4", n)
		}
		if _, err := v.Verify(ctx, tokOld); err != nil {
			t.Fatalf("during outage: %v", err)
		}

		// The issuer recovers with a rotated set; the background picks it up.
		srv.status.Store(http.StatusOK)
		srv.serve(t, newKey)
		time.Sleep(interval)
		synctest.Wait()
		if _, err := v.Verify(ctx, tokOld); jwtauth.Reason(err) != jwtauth.ReasonUnknownKID {
			t.Errorf("old key after the background refresh: %v, want %s", err, jwtauth.ReasonUnknownKID)
		}
		if _, err := v.Verify(ctx, tokNew); err != nil {
			t.Fatalf("after recovery: %v", err)
		}

		// After cancel, the loop stops.
		cancel()
		synctest.Wait()
		stoppedAt := srv.hits.Load()
		time.Sleep(10 * interval)
		if n := srv.hits.Load() - stoppedAt; n != 0 {
			t.Errorf("%d fetches after the context was cancelled", n)
		}
	})
}

func TestKeysUnavailable(t *testing.T) {
	t.Parallel()
	issuer := readKey(t, "rsa_issuer.pem")
	good := publicJWK(t, issuer, "issuer-rsa", "RS256")
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	must(t, err)
	hmacKey, err := jwk.FromRaw([]byte("0123456789abcdef0123456789abcdef"))
	must(t, err)
	must(t, hmacKey.Set(jwk.KeyIDKey, "issuer-rsa"))
	encKey := publicJWK(t, issuer, "issuer-rsa", "")
	must(t, encKey.Set(jwk.KeyUsageKey, "enc"))

	tests := []struct {
		name  string
		setup func(t *testing.T, s *jwksServer)
	}{
		{"status 500", func(t *testing.T, s *jwksServer) { s.status.Store(http.StatusInternalServerError) }},
		{"status 404", func(t *testing.T, s *jwksServer) { s.status.Store(http.StatusNotFound) }},
		{"not JSON", func(t *testing.T, s *jwksServer) { s.serveRaw([]byte("<html>hello</html>")) }},
		{"body over 1 MiB", func(t *testing.T, s *jwksServer) {
			s.serveRaw([]byte(`{"keys":[],"pad":"` + strings.Repeat("a", 1<<20) + `"}`))
		}},
		{"empty key set", func(t *testing.T, s *jwksServer) { s.serve(t) }},
		{"only a symmetric key", func(t *testing.T, s *jwksServer) { s.serve(t, hmacKey) }},
		{"only a 1024-bit RSA key", func(t *testing.T, s *jwksServer) { s.serve(t, publicJWK(t, weak, "issuer-rsa", "RS256")) }},
		{"only an encryption key", func(t *testing.T, s *jwksServer) { s.serve(t, encKey) }},
		{"server down", func(t *testing.T, s *jwksServer) { s.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newJWKSServer(t, good)
			tok := sign(t, jwa.RS256, issuer, map[string]any{"kid": "issuer-rsa"}, idClaims(srv.issuer(), baseTime))
			clock := newFakeClock(baseTime)
			v, err := jwtauth.New(jwtauth.Config{Issuer: srv.issuer(), HTTPClient: srv.Client(), Audiences: []string{clientID}, Now: clock.Now})
			must(t, err)
			tt.setup(t, srv)

			for i := range 3 { // repeated failures within MinRefreshInterval do not refetch
				_, err := v.Verify(context.Background(), tok)
				if !errors.Is(err, jwtauth.ErrKeysUnavailable) || jwtauth.Reason(err) != jwtauth.ReasonKeysUnavailable {
					t.Fatalf("attempt %d: err = %v, want ErrKeysUnavailable", i, err)
				}
				if errors.Is(err, jwtauth.ErrTokenInvalid) {
					t.Fatalf("ErrKeysUnavailable must not match ErrTokenInvalid: %v", err)
				}
			}
			if n := srv.hits.Load(); n > 1 {
				t.Errorf("fetches = %d, want at most 1", n)
			}
		})
	}
}

func TestKeysUnavailableRecovers(t *testing.T) {
	t.Parallel()
	issuer := readKey(t, "rsa_issuer.pem")
	srv := newJWKSServer(t, publicJWK(t, issuer, "issuer-rsa", "RS256"))
	tok := sign(t, jwa.RS256, issuer, map[string]any{"kid": "issuer-rsa"}, idClaims(srv.issuer(), baseTime))
	clock := newFakeClock(baseTime.Add(-time.Minute))
	v, err := jwtauth.New(jwtauth.Config{Issuer: srv.issuer(), HTTPClient: srv.Client(), Audiences: []string{clientID}, Now: clock.Now})
	must(t, err)

	srv.status.Store(http.StatusServiceUnavailable)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, jwtauth.ErrKeysUnavailable) {
		t.Fatalf("during outage: err = %v, want ErrKeysUnavailable", err)
	}
	srv.status.Store(http.StatusOK)
	clock.Set(baseTime)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestVerifyGivesUpWithContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		issuer := readKey(t, "rsa_issuer.pem")
		srv := newJWKSServer(t, publicJWK(t, issuer, "issuer-rsa", "RS256"))
		srv.delay.Store(int64(time.Minute))
		tok := sign(t, jwa.RS256, issuer, map[string]any{"kid": "issuer-rsa"}, idClaims(srv.issuer(), baseTime))
		v, err := jwtauth.New(jwtauth.Config{Issuer: srv.issuer(), HTTPClient: srv.Client(), Audiences: []string{clientID}, Now: newFakeClock(baseTime).Now})
		must(t, err)

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = v.Verify(ctx, tok)
		if !errors.Is(err, jwtauth.ErrKeysUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrKeysUnavailable wrapping context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("Verify returned %v after it started, want when its context expired (50ms)", d)
		}
	})
}

// TestKeySource checks Config.Keys: the same verification, keys cached,
// private keys reduced to public ones.
func TestKeySource(t *testing.T) {
	t.Parallel()
	priv := readKey(t, "ec_issuer.pem")
	privJWK, err := jwk.FromRaw(priv)
	must(t, err)
	must(t, privJWK.Set(jwk.KeyIDKey, "builtin-1"))
	must(t, privJWK.Set(jwk.AlgorithmKey, jwa.ES256))
	src := &staticKeys{set: keySet(t, privJWK)}
	const issuer = "gateway" // not a URL: allowed when Keys is set
	v, err := jwtauth.New(jwtauth.Config{
		Issuer:           issuer,
		Keys:             src,
		Algorithms:       []string{"ES256"},
		TokenUse:         "access",
		AllowAnyAudience: true,
		Now:              newFakeClock(baseTime).Now,
	})
	must(t, err)

	tok := sign(t, jwa.ES256, priv, map[string]any{"kid": "builtin-1"}, with(accessClaims(issuer, baseTime), "client_id", nil))
	for range 5 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	if n := src.calls.Load(); n != 1 {
		t.Errorf("Keys calls = %d, want 1", n)
	}

	failing := &staticKeys{err: errors.New("keystore locked")}
	v, err = jwtauth.New(jwtauth.Config{Issuer: issuer, Keys: failing, Algorithms: []string{"ES256"}, AllowAnyAudience: true})
	must(t, err)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, jwtauth.ErrKeysUnavailable) {
		t.Errorf("failing source: err = %v, want ErrKeysUnavailable", err)
	}
}

func TestStartIsIdempotent(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := newJWKSServer(t, publicJWK(t, readKey(t, "rsa_issuer.pem"), "issuer-rsa", "RS256"))
		v, err := jwtauth.New(jwtauth.Config{Issuer: srv.issuer(), HTTPClient: srv.Client(), Audiences: []string{clientID}, RefreshInterval: time.Hour})
		must(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for range 3 {
			v.Start(ctx)
		}
		time.Sleep(time.Minute) // less than the refresh interval
		synctest.Wait()
		if n := srv.hits.Load(); n != 1 {
			t.Errorf("fetches after three Start calls = %d, want 1", n)
		}
	})
}
