package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

const (
	// maxJWKSBytes bounds the JWKS response body. Real key sets are a few KiB.
	maxJWKSBytes = 1 << 20
	// minRSABits is the smallest RSA modulus accepted in a key set.
	minRSABits = 2048
	// fetchTimeout bounds one key fetch, whatever the caller's context says:
	// the fetch is shared by every caller waiting for it (see refresh).
	fetchTimeout = 30 * time.Second
)

// keyKind is the kind of public key an algorithm needs.
type keyKind int

const (
	kindRSA keyKind = iota + 1
	kindP256
	kindP384
	kindP521
	kindEd25519
)

// algKinds lists the algorithms Config.Algorithms may name, with the key
// each needs. HS* and "none" are deliberately absent.
var algKinds = map[jwa.SignatureAlgorithm]keyKind{
	jwa.RS256: kindRSA, jwa.RS384: kindRSA, jwa.RS512: kindRSA,
	jwa.PS256: kindRSA, jwa.PS384: kindRSA, jwa.PS512: kindRSA,
	jwa.ES256: kindP256, jwa.ES384: kindP384, jwa.ES512: kindP521,
	jwa.EdDSA: kindEd25519,
}

// verificationKey is one usable public key from the key set.
type verificationKey struct {
	// algs are the algorithms this key may verify: its own "alg" if it
	// has one, else every allowed algorithm that fits its type. Always a
	// subset of Config.Algorithms; empty when the key's "alg" is not
	// allowed or does not fit its type (the kid is then known but no
	// token can verify with it).
	algs []jwa.SignatureAlgorithm
	raw  any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// keySet is an immutable snapshot of the verification keys, by kid.
type keySet struct {
	byKID  map[string][]*verificationKey
	loaded time.Time
}

// newKeySet keeps the keys of set that can verify signatures: public,
// with a kid, "use" absent or "sig", "key_ops" absent or containing
// "verify", RSA of at least 2048 bits, EC P-256/384/521 or Ed25519.
// Symmetric keys are dropped. It fails when no key can verify any allowed
// algorithm, so that an empty or foreign key set never replaces a good one.
func newKeySet(set jwk.Set, allowed map[jwa.SignatureAlgorithm]jws.Verifier, now time.Time) (*keySet, error) {
	if set == nil {
		return nil, errors.New("key source returned no key set")
	}
	ks := &keySet{byKID: make(map[string][]*verificationKey), loaded: now}
	usable := 0
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok {
			continue
		}
		vk, kid, ok := newVerificationKey(k, allowed)
		if !ok {
			continue
		}
		ks.byKID[kid] = append(ks.byKID[kid], vk)
		if len(vk.algs) > 0 {
			usable++
		}
	}
	if usable == 0 {
		return nil, fmt.Errorf("key set has no usable signing key among %d keys", set.Len())
	}
	return ks, nil
}

func newVerificationKey(k jwk.Key, allowed map[jwa.SignatureAlgorithm]jws.Verifier) (*verificationKey, string, bool) {
	kid := k.KeyID()
	if kid == "" {
		return nil, "", false
	}
	if use := k.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return nil, "", false
	}
	if ops := k.KeyOps(); len(ops) > 0 && !slices.Contains(ops, jwk.KeyOpVerify) {
		return nil, "", false
	}
	if k.KeyType() == jwa.OctetSeq {
		return nil, "", false // jwk.PublicKeyOf returns symmetric keys unchanged
	}
	pub, err := jwk.PublicKeyOf(k) // a private JWK in the set is reduced to its public part
	if err != nil || pub.Validate() != nil {
		return nil, "", false
	}
	var raw any
	if err := pub.Raw(&raw); err != nil {
		return nil, "", false
	}
	kind, ok := kindOf(raw)
	if !ok {
		return nil, "", false
	}
	vk := &verificationKey{raw: raw}
	if a := k.Algorithm().String(); a != "" {
		alg := jwa.SignatureAlgorithm(a)
		if allowed[alg] != nil && algKinds[alg] == kind {
			vk.algs = []jwa.SignatureAlgorithm{alg}
		}
		return vk, kid, true
	}
	for alg := range allowed {
		if algKinds[alg] == kind {
			vk.algs = append(vk.algs, alg)
		}
	}
	return vk, kid, true
}

func kindOf(raw any) (keyKind, bool) {
	switch key := raw.(type) {
	case *rsa.PublicKey:
		if key.N == nil || key.N.BitLen() < minRSABits {
			return 0, false
		}
		return kindRSA, true
	case *ecdsa.PublicKey:
		if key.Curve == nil {
			return 0, false
		}
		switch key.Curve.Params().Name {
		case "P-256":
			return kindP256, true
		case "P-384":
			return kindP384, true
		case "P-521":
			return kindP521, true
		}
	case ed25519.PublicKey:
		if len(key) == ed25519.PublicKeySize {
			return kindEd25519, true
		}
	}
	return 0, false
}

// httpKeySource fetches a JWKS document over HTTP.
type httpKeySource struct {
	url    string
	client *http.Client
}

func (s httpKeySource) Keys(ctx context.Context) (jwk.Set, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("building jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
		return nil, fmt.Errorf("fetching jwks %s: unexpected status %d", s.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading jwks %s: %w", s.url, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("reading jwks %s: body larger than %d bytes", s.url, maxJWKSBytes)
	}
	// A key the library cannot parse (an unknown kty, say) is skipped
	// rather than failing the whole set; newKeySet fails if nothing usable
	// is left.
	set, err := jwk.Parse(body, jwk.WithIgnoreParseError(true))
	if err != nil {
		return nil, fmt.Errorf("parsing jwks %s: %w", s.url, err)
	}
	return set, nil
}

// currentKeys returns the cached key set, loading it on first use. Without
// a background refresh (Start), a set older than RefreshInterval is
// refreshed here; if that fails the stale set is still used.
func (v *Verifier) currentKeys(ctx context.Context) (*keySet, error) {
	ks := v.keys.Load()
	if ks == nil {
		return v.refresh(ctx, false)
	}
	if !v.background.Load() && v.now().Sub(ks.loaded) >= v.refreshInterval {
		if fresh, err := v.refresh(ctx, false); err == nil {
			return fresh, nil
		}
	}
	return ks, nil
}

// refresh loads a new key set. Unless force is set, it fetches only if the
// last attempt started at least MinRefreshInterval ago, and otherwise
// returns the cached set (or the last fetch error when there is none).
// Concurrent callers share one fetch. The fetch itself does not stop when
// ctx is cancelled (others may be waiting for it), but the wait does.
func (v *Verifier) refresh(ctx context.Context, force bool) (*keySet, error) {
	ch := v.group.DoChan("keys", func() (any, error) {
		return v.fetch(ctx, force)
	})
	select {
	case r := <-ch:
		ks, _ := r.Val.(*keySet) // nil when r.Err is set
		return ks, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (v *Verifier) fetch(ctx context.Context, force bool) (*keySet, error) {
	now := v.now()
	v.mu.Lock()
	if !force && !v.lastAttempt.IsZero() && now.Sub(v.lastAttempt) < v.minRefreshInterval {
		ks, lastErr := v.keys.Load(), v.lastErr
		v.mu.Unlock()
		if ks != nil {
			return ks, nil
		}
		if lastErr == nil {
			lastErr = errors.New("key fetch rate limited")
		}
		return nil, lastErr
	}
	v.lastAttempt = now
	v.mu.Unlock()

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	set, err := v.source.Keys(fctx)
	var ks *keySet
	if err == nil {
		ks, err = newKeySet(set, v.verifiers, now)
	}
	v.mu.Lock()
	v.lastErr = err
	v.mu.Unlock()
	if err != nil {
		return nil, err
	}
	v.keys.Store(ks)
	return ks, nil
}

// refreshLoop refreshes the key set every RefreshInterval until ctx is
// done. After a failure it retries sooner, backing off from
// MinRefreshInterval up to RefreshInterval; the last good set stays in use.
func (v *Verifier) refreshLoop(ctx context.Context) {
	defer v.background.Store(false)
	timer := time.NewTimer(0)
	defer timer.Stop()
	backoff := v.minRefreshInterval
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		next := v.refreshInterval
		if _, err := v.refresh(ctx, true); err != nil {
			next = min(backoff, v.refreshInterval)
			backoff = min(2*backoff, v.refreshInterval)
		} else {
			backoff = v.minRefreshInterval
		}
		timer.Reset(next)
	}
}
