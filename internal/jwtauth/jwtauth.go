package jwtauth

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"golang.org/x/sync/singleflight"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultTokenUse           = TokenUseID
	DefaultLeeway             = 30 * time.Second
	DefaultMaxTokenBytes      = 8192
	DefaultRefreshInterval    = 15 * time.Minute
	DefaultMinRefreshInterval = 10 * time.Second
	DefaultHTTPTimeout        = 10 * time.Second
)

// Values of Config.TokenUse and of the token_use claim.
const (
	TokenUseID     = "id"
	TokenUseAccess = "access"
	TokenUseAny    = "any" // Config.TokenUse only
)

// KeySource supplies verification keys: public JWKs, each with a "kid" and
// preferably an "alg". It is called when the Verifier needs keys (first
// use, unknown kid, periodic refresh), never once per token.
// Implementations must be safe for concurrent use.
type KeySource interface {
	Keys(ctx context.Context) (jwk.Set, error)
}

// Config configures a Verifier. Zero values mean the documented default.
type Config struct {
	// Issuer is the exact expected "iss" claim (see the package doc for
	// Cognito's); no trailing slash is added or removed. Required.
	Issuer string

	// JWKSURL is where the key set is fetched (http or https). Default:
	// Issuer + "/.well-known/jwks.json". Ignored when Keys is set.
	JWKSURL string

	// Keys, when set, replaces fetching JWKSURL: a built-in identity
	// provider passes its own public keys here. Caching, refresh and
	// verification work exactly as with a fetched key set.
	Keys KeySource

	// Algorithms are the accepted signature algorithms. Default ["RS256"].
	// Allowed: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA. New
	// rejects "none", HS* and anything else.
	Algorithms []string

	// TokenUse is the required token_use claim: "id", "access" or "any"
	// (either, but the claim must still be present). Default "id".
	TokenUse string

	// Audiences are the accepted app client ids, matched against "aud" in
	// id tokens and "client_id" in access tokens. Required unless
	// AllowAnyAudience is set; the two are mutually exclusive.
	Audiences []string

	// AllowAnyAudience skips the audience check. Only for issuers that
	// serve a single client.
	AllowAnyAudience bool

	// Leeway is the clock skew tolerated for exp, nbf and iat. Default 30s.
	Leeway time.Duration

	// MaxTokenBytes rejects longer tokens before any parsing. Default 8192.
	MaxTokenBytes int

	// RefreshInterval is how often Start refreshes the key set, and the age
	// after which Verify refreshes it when Start is not running.
	// Default 15m.
	RefreshInterval time.Duration

	// MinRefreshInterval is the least time between two on-demand fetches
	// (unknown kid, first use, stale set). Default 10s. Must not exceed
	// RefreshInterval.
	MinRefreshInterval time.Duration

	// HTTPClient fetches JWKSURL. Default: a client with a 10s timeout.
	HTTPClient *http.Client

	// DisableSignatureCache verifies every token's signature on every call.
	// By default a token whose signature verified under the current key set
	// is remembered (by its SHA-256, at most 10,000 tokens), so clients that
	// send the same token on each request cost one public-key operation;
	// claims, expiry included, are checked on every call regardless.
	DisableSignatureCache bool

	// Now returns the current time. Default time.Now. For tests.
	Now func() time.Time
}

// Claims is the identity carried by a verified token.
type Claims struct {
	Subject  string // "sub"
	Username string // "cognito:username" (id tokens) or "username" (access tokens)
	Email    string // "email"; empty if absent
	TokenUse string // "id" or "access"
	// ClientID is "client_id" for access tokens, and for id tokens the
	// "aud" value that matched Config.Audiences (the first one when
	// AllowAnyAudience is set).
	ClientID string
	Issuer   string // "iss"
	// Groups is "cognito:groups": an array of strings (a single string
	// counts as one group). Empty if absent.
	Groups    []string
	ExpiresAt time.Time // "exp"
	// All holds every claim as decoded by encoding/json (numbers are
	// float64, arrays []any), for configurable role claims. Read-only.
	All map[string]any
}

// Verifier verifies bearer tokens. It is safe for concurrent use.
type Verifier struct {
	issuer             string
	audiences          map[string]bool
	anyAudience        bool
	tokenUse           string
	verifiers          map[jwa.SignatureAlgorithm]jws.Verifier // by allowed algorithm
	leeway             time.Duration
	maxTokenBytes      int
	refreshInterval    time.Duration
	minRefreshInterval time.Duration
	source             KeySource
	now                func() time.Time

	sigs       *sigCache // nil when Config.DisableSignatureCache
	keys       atomic.Pointer[keySet]
	group      singleflight.Group
	startOnce  sync.Once
	background atomic.Bool

	mu          sync.Mutex // guards lastAttempt, lastErr
	lastAttempt time.Time
	lastErr     error
}

// New checks cfg, applies defaults and returns a Verifier. It does no
// network I/O: keys are fetched by Start or on first use.
func New(cfg Config) (*Verifier, error) {
	v := &Verifier{
		issuer:             cfg.Issuer,
		anyAudience:        cfg.AllowAnyAudience,
		tokenUse:           cmp.Or(cfg.TokenUse, DefaultTokenUse),
		leeway:             cmp.Or(cfg.Leeway, DefaultLeeway),
		maxTokenBytes:      cmp.Or(cfg.MaxTokenBytes, DefaultMaxTokenBytes),
		refreshInterval:    cmp.Or(cfg.RefreshInterval, DefaultRefreshInterval),
		minRefreshInterval: cmp.Or(cfg.MinRefreshInterval, DefaultMinRefreshInterval),
		now:                cfg.Now,
		source:             cfg.Keys,
	}
	if !cfg.DisableSignatureCache {
		v.sigs = &sigCache{}
	}
	if v.issuer == "" {
		return nil, errors.New("jwtauth: issuer is required")
	}
	if err := checkTokenUse(v.tokenUse); err != nil {
		return nil, err
	}

	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = []string{jwa.RS256.String()}
	}
	v.verifiers = make(map[jwa.SignatureAlgorithm]jws.Verifier, len(algs))
	for _, a := range algs {
		alg := jwa.SignatureAlgorithm(a)
		if _, ok := algKinds[alg]; !ok {
			if strings.EqualFold(a, "none") || strings.HasPrefix(strings.ToUpper(a), "HS") {
				return nil, fmt.Errorf("jwtauth: algorithm %q is not allowed: only asymmetric signatures are accepted", a)
			}
			return nil, fmt.Errorf("jwtauth: unsupported algorithm %q", a)
		}
		verifier, err := jws.NewVerifier(alg)
		if err != nil {
			return nil, fmt.Errorf("jwtauth: creating verifier for %s: %w", alg, err)
		}
		v.verifiers[alg] = verifier
	}

	if v.anyAudience && len(cfg.Audiences) > 0 {
		return nil, errors.New("jwtauth: audiences and allow_any_audience are mutually exclusive")
	}
	if !v.anyAudience && len(cfg.Audiences) == 0 {
		return nil, errors.New("jwtauth: at least one audience (app client id) is required unless allow_any_audience is set")
	}
	v.audiences = make(map[string]bool, len(cfg.Audiences))
	for _, a := range cfg.Audiences {
		if a == "" {
			return nil, errors.New("jwtauth: empty audience")
		}
		v.audiences[a] = true
	}

	switch {
	case v.leeway < 0:
		return nil, errors.New("jwtauth: leeway must not be negative")
	case v.maxTokenBytes < 0:
		return nil, errors.New("jwtauth: max token bytes must not be negative")
	case v.refreshInterval < 0 || v.minRefreshInterval < 0:
		return nil, errors.New("jwtauth: refresh intervals must not be negative")
	case v.minRefreshInterval > v.refreshInterval:
		return nil, fmt.Errorf("jwtauth: min refresh interval %v exceeds refresh interval %v", v.minRefreshInterval, v.refreshInterval)
	}

	if v.now == nil {
		v.now = time.Now
	}
	if v.source == nil {
		jwksURL := cmp.Or(cfg.JWKSURL, strings.TrimSuffix(cfg.Issuer, "/")+"/.well-known/jwks.json")
		u, err := url.Parse(jwksURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("jwtauth: jwks url %q must be an absolute http(s) URL", jwksURL)
		}
		v.source = httpKeySource{url: jwksURL, client: cmp.Or(cfg.HTTPClient, &http.Client{Timeout: DefaultHTTPTimeout})}
	}
	return v, nil
}

// Start refreshes the key set in the background, first at once and then
// every RefreshInterval, until ctx is done. A failed refresh keeps the last
// good set and is retried sooner (from MinRefreshInterval, doubling). Only
// the first call has an effect. Start is optional: without it, Verify
// fetches keys on first use and when they are older than RefreshInterval,
// which makes that request wait for the fetch.
func (v *Verifier) Start(ctx context.Context) {
	v.startOnce.Do(func() {
		v.background.Store(true)
		go v.refreshLoop(ctx)
	})
}

// b64 is the strict unpadded base64url decoder required for compact JWS.
var b64 = base64.RawURLEncoding.Strict()

// Verify checks token (the compact JWS, without "Bearer ") and returns its
// claims. Errors match ErrTokenInvalid (possibly also ErrTokenExpired) or
// ErrKeysUnavailable; [Reason] tells why. ctx bounds the wait for a key
// fetch when one is needed.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	return v.verify(ctx, token, v.tokenUse)
}

// VerifyTokenUse is Verify requiring the token_use use (TokenUseID,
// TokenUseAccess or TokenUseAny) instead of Config.TokenUse, with the same
// keys; e.g. to read the id token a login returned while requests carry
// access tokens.
func (v *Verifier) VerifyTokenUse(ctx context.Context, token, use string) (*Claims, error) {
	if err := checkTokenUse(use); err != nil {
		return nil, err
	}
	return v.verify(ctx, token, use)
}

// checkTokenUse refuses a token use other than TokenUseID, TokenUseAccess
// and TokenUseAny.
func checkTokenUse(use string) error {
	switch use {
	case TokenUseID, TokenUseAccess, TokenUseAny:
		return nil
	}
	return fmt.Errorf("jwtauth: token_use must be %q, %q or %q, got %q", TokenUseID, TokenUseAccess, TokenUseAny, use)
}

func (v *Verifier) verify(ctx context.Context, token, wantUse string) (*Claims, error) {
	if len(token) > v.maxTokenBytes {
		return nil, reject(ReasonTooLarge, fmt.Sprintf("token is %d bytes, limit is %d", len(token), v.maxTokenBytes))
	}
	hdrPart, payloadPart, sigPart, ok := splitCompact(token)
	if !ok {
		return nil, reject(ReasonMalformed, "not a compact JWS")
	}
	hdr, err := parseHeader(hdrPart)
	if err != nil {
		return nil, reject(ReasonMalformed, err.Error())
	}
	alg := jwa.SignatureAlgorithm(hdr.alg)
	verifier := v.verifiers[alg]
	if verifier == nil {
		return nil, reject(ReasonBadAlg, "algorithm not allowed")
	}
	if hdr.crit {
		return nil, reject(ReasonMalformed, "crit header is not supported")
	}
	if hdr.kid == "" {
		return nil, reject(ReasonUnknownKID, "token has no kid")
	}
	sig, err := b64.DecodeString(sigPart)
	if err != nil {
		return nil, reject(ReasonMalformed, "bad signature encoding")
	}

	ks, err := v.currentKeys(ctx)
	if err != nil {
		return nil, keysUnavailable(err)
	}
	candidates := ks.byKID[hdr.kid]
	if len(candidates) == 0 {
		// Maybe the issuer rotated keys: refresh, at most once per
		// MinRefreshInterval whatever the number of such tokens.
		if ks, err = v.refresh(ctx, false); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, keysUnavailable(ctxErr)
			}
			return nil, reject(ReasonUnknownKID, "kid not in key set")
		}
		if candidates = ks.byKID[hdr.kid]; len(candidates) == 0 {
			return nil, reject(ReasonUnknownKID, "kid not in key set")
		}
	}

	var digest [32]byte
	cached := false
	if v.sigs != nil {
		digest = sha256.Sum256([]byte(token))
		cached = v.sigs.has(digest, ks)
	}
	signingInput := []byte(token[:len(hdrPart)+1+len(payloadPart)])
	fits, verified := cached, cached
	for _, k := range candidates {
		if verified || !slices.Contains(k.algs, alg) {
			continue
		}
		fits = true
		verified = verifier.Verify(signingInput, sig, k.raw) == nil
	}
	switch {
	case !fits:
		return nil, reject(ReasonBadAlg, "algorithm does not match the key")
	case !verified:
		return nil, reject(ReasonBadSignature, "signature does not verify")
	}
	if v.sigs != nil && !cached {
		v.sigs.add(digest, ks)
	}

	payload, err := b64.DecodeString(payloadPart)
	if err != nil {
		return nil, reject(ReasonMalformed, "bad payload encoding")
	}
	return v.checkClaims(payload, wantUse)
}

// splitCompact splits a compact JWS into its three base64url parts. Header
// and payload must be non-empty; the signature may be empty (alg "none",
// rejected later as bad_alg). Any byte outside the base64url alphabet, so
// also a JSON serialization, makes it fail. The explicit check matters:
// encoding/base64 silently skips '\r' and '\n'.
func splitCompact(token string) (hdr, payload, sig string, ok bool) {
	dots := 0
	for i := 0; i < len(token); i++ {
		if !base64URLAlphabet[token[i]] {
			if token[i] != '.' {
				return "", "", "", false
			}
			dots++
		}
	}
	if dots != 2 {
		return "", "", "", false
	}
	hdr, rest, _ := strings.Cut(token, ".")
	payload, sig, _ = strings.Cut(rest, ".")
	if hdr == "" || payload == "" {
		return "", "", "", false
	}
	return hdr, payload, sig, true
}

var base64URLAlphabet = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		t[c] = true
	}
	return t
}()

// header holds the JOSE header fields Verify looks at. Everything else,
// including jku, x5u, jwk and x5c, is ignored: keys come only from the
// configured source.
type header struct {
	alg, kid string
	crit     bool
}

func parseHeader(part string) (header, error) {
	raw, err := b64.DecodeString(part)
	if err != nil {
		return header{}, errors.New("bad header encoding")
	}
	// A map keeps member names exact (a struct would match "ALG" too).
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return header{}, errors.New("header is not a JSON object")
	}
	var h header
	dst := map[string]*string{"alg": &h.alg, "kid": &h.kid}
	for _, name := range []string{"alg", "kid"} {
		if v, ok := fields[name]; ok && json.Unmarshal(v, dst[name]) != nil {
			return header{}, fmt.Errorf("header %s is not a string", name)
		}
	}
	_, h.crit = fields["crit"]
	return h, nil
}
