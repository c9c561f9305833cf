package localidp

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

const (
	testIssuer   = "https://gateway.example.com/idp"
	testClientID = "local-client"
)

// idpFixture is an Issuer with its users, keys and clock.
type idpFixture struct {
	issuer    *Issuer
	users     *Users
	usersPath string
	keys      *KeyStore
	keyDir    string
	clock     *fakeClock
}

func newIDPFixture(t *testing.T) *idpFixture {
	t.Helper()
	clock := newFakeClock()
	users, usersPath := loadTestUsers(t, "valid.json", clock)
	keys, keyDir := openTestKeyStore(t, clock)
	return &idpFixture{
		issuer:    &Issuer{Issuer: testIssuer, ClientID: testClientID, Keys: keys, Now: clock.Now},
		users:     users,
		usersPath: usersPath,
		keys:      keys,
		keyDir:    keyDir,
		clock:     clock,
	}
}

// signIn authenticates email and issues tokens.
func (f *idpFixture) signIn(t *testing.T, email, password string) *Tokens {
	t.Helper()
	u, err := f.users.Authenticate(email, password)
	if err != nil {
		t.Fatalf("Authenticate(%s): %v", email, err)
	}
	tokens, err := f.issuer.Issue(u)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return tokens
}

// verify checks token's signature against the fixture's public keys, the
// way a verifier that fetched the JWKS would, and its header, and returns
// its claims as plain JSON values.
func (f *idpFixture) verify(t *testing.T, token string) map[string]any {
	t.Helper()
	if _, err := jwt.Parse([]byte(token),
		jwt.WithKeySet(f.keys.PublicSet()),
		jwt.WithClock(jwt.ClockFunc(f.clock.Now)),
		jwt.WithIssuer(testIssuer),
	); err != nil {
		t.Fatalf("token does not verify against PublicSet: %v", err)
	}
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if h.Algorithm() != jwa.ES256 || h.KeyID() != currentKid(t, f.keys) {
		t.Errorf("header alg %v kid %s, want ES256 and the current kid %s", h.Algorithm(), h.KeyID(), currentKid(t, f.keys))
	}
	if got := slices.Sorted(maps.Keys(segment(t, token, 0))); !slices.Equal(got, []string{"alg", "kid"}) {
		t.Errorf("header members %v, want only alg and kid", got)
	}
	return payload(t, token)
}

// payload decodes the claims of token without verifying it.
func payload(t *testing.T, token string) map[string]any {
	t.Helper()
	return segment(t, token, 1)
}

// segment decodes part i (0 header, 1 claims) of a compact JWS.
func segment(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkClaims compares claims with want, where the value wantAny means any
// value of the right kind, and reports any claim not in want.
func checkClaims(t *testing.T, label string, claims, want map[string]any) {
	t.Helper()
	for name, w := range want {
		got, ok := claims[name]
		switch {
		case !ok:
			t.Errorf("%s: no %s claim", label, name)
		case w == anyString:
			if s, ok := got.(string); !ok || s == "" {
				t.Errorf("%s: %s = %#v, want a string", label, name, got)
			}
		default:
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(w)
			if string(gj) != string(wj) {
				t.Errorf("%s: %s = %s, want %s", label, name, gj, wj)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(claims)) {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: unexpected claim %s = %#v", label, name, claims[name])
		}
	}
}

// anyString in a want map accepts any non-empty string.
const anyString = "<any string>"

func TestIssue(t *testing.T) {
	f := newIDPFixture(t)
	tokens := f.signIn(t, "OPS@example.com", "s3cret")

	if tokens.TokenType != "Bearer" || tokens.ExpiresIn != 3600 {
		t.Errorf("TokenType %q, ExpiresIn %d; want Bearer, 3600", tokens.TokenType, tokens.ExpiresIn)
	}
	now := f.clock.Now().Unix()
	groups := []string{"uploader", "admin"}

	id := f.verify(t, tokens.IDToken)
	checkClaims(t, "id token", id, map[string]any{
		"iss":              testIssuer,
		"sub":              "ops-0001",
		"aud":              testClientID,
		"token_use":        "id",
		"email":            "ops@example.com",
		"email_verified":   true,
		"cognito:username": "ops-0001",
		"cognito:groups":   groups,
		"auth_time":        now,
		"iat":              now,
		"exp":              now + 3600,
		"jti":              anyString,
	})

	access := f.verify(t, tokens.AccessToken)
	checkClaims(t, "access token", access, map[string]any{
		"iss":            testIssuer,
		"sub":            "ops-0001",
		"client_id":      testClientID,
		"token_use":      "access",
		"username":       "ops-0001",
		"cognito:groups": groups,
		"scope":          "aws.cognito.signin.user.admin",
		"auth_time":      now,
		"iat":            now,
		"exp":            now + 3600,
		"jti":            anyString,
	})

	refresh := f.verify(t, tokens.RefreshToken)
	checkClaims(t, "refresh token", refresh, map[string]any{
		"iss":              testIssuer,
		"sub":              "ops-0001",
		"client_id":        testClientID,
		"token_use":        "refresh",
		"auth_time":        now,
		"iat":              now,
		"exp":              now + int64(DefaultRefreshTTL/time.Second),
		"jti":              anyString,
		"sid":              anyString,
		"cred":             anyString,
		"token_generation": int64(0),
	})

	if id["jti"] == access["jti"] || access["jti"] == refresh["jti"] {
		t.Errorf("tokens share a jti")
	}
}

func TestIssueWithoutGroups(t *testing.T) {
	f := newIDPFixture(t)
	f.issuer.TokenTTL = 15 * time.Minute
	tokens := f.signIn(t, "legacy@example.com", "hunter2")
	if tokens.ExpiresIn != 900 {
		t.Errorf("ExpiresIn %d, want 900", tokens.ExpiresIn)
	}
	for _, tok := range []string{tokens.IDToken, tokens.AccessToken} {
		claims := f.verify(t, tok)
		if g, ok := claims["cognito:groups"]; ok {
			t.Errorf("%s token has cognito:groups %v for a user without groups", claims["token_use"], g)
		}
		if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 900 {
			t.Errorf("%s token lives %vs, want 900", claims["token_use"], exp-iat)
		}
	}
}

func TestTokensJSON(t *testing.T) {
	b, err := json.Marshal(Tokens{IDToken: "i", AccessToken: "a", ExpiresIn: 3600, TokenType: "Bearer"})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"id_token":"i","access_token":"a","expires_in":3600,"token_type":"Bearer"}`
	if string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
}

func TestRefresh(t *testing.T) {
	f := newIDPFixture(t)
	signedIn := f.clock.Now().Unix()
	first := f.signIn(t, "demo@example.com", "correct horse")

	f.clock.Advance(50 * time.Minute)
	got, err := f.issuer.Refresh(first.RefreshToken, f.users)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if got.RefreshToken != first.RefreshToken {
		t.Errorf("Refresh changed the refresh token, want it returned as is")
	}
	if got.ExpiresIn != 3600 || got.TokenType != "Bearer" {
		t.Errorf("ExpiresIn %d, TokenType %q", got.ExpiresIn, got.TokenType)
	}
	now := f.clock.Now().Unix()
	for _, tok := range []string{got.IDToken, got.AccessToken} {
		claims := f.verify(t, tok)
		want := map[string]any{"auth_time": signedIn, "iat": now, "exp": now + 3600, "sub": DefaultSub("demo@example.com")}
		for name, w := range want {
			if gj, wj := mustJSON(t, claims[name]), mustJSON(t, w); gj != wj {
				t.Errorf("%s token: %s = %s, want %s", claims["token_use"], name, gj, wj)
			}
		}
	}
}

func TestRefreshSeesNewGroups(t *testing.T) {
	f := newIDPFixture(t)
	tokens := f.signIn(t, "demo@example.com", "correct horse")

	replaceFile(t, f.usersPath, `{"users":[{"email":"demo@example.com","groups":["viewer"],
		"password_hash":"$2a$10$BiqbFUZ6klYRzlrxGGdrjeVLbADUaXhdlaDtPDSKyHI8Qr2BX1Eky"}]}`, time.Now().Add(time.Hour))
	f.clock.Advance(2 * time.Second)

	got, err := f.issuer.Refresh(tokens.RefreshToken, f.users)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if g := f.verify(t, got.AccessToken)["cognito:groups"]; mustJSON(t, g) != `["viewer"]` {
		t.Errorf("cognito:groups %v after the users file changed, want [viewer]", g)
	}
}

func TestRefreshAcrossRotation(t *testing.T) {
	f := newIDPFixture(t)
	tokens := f.signIn(t, "demo@example.com", "correct horse")
	oldExp := payload(t, tokens.RefreshToken)["exp"]

	f.clock.Advance(time.Hour)
	if _, err := f.keys.Rotate(); err != nil {
		t.Fatal(err)
	}
	got, err := f.issuer.Refresh(tokens.RefreshToken, f.users)
	if err != nil {
		t.Fatalf("Refresh with a token signed by the replaced key: %v", err)
	}
	if got.RefreshToken == tokens.RefreshToken {
		t.Fatalf("refresh token signed by a replaced key was returned as is, want it re-signed")
	}
	claims := f.verify(t, got.RefreshToken) // checks the kid is the current one
	if claims["exp"] != oldExp {
		t.Errorf("re-signed refresh token expires at %v, want %v as before", claims["exp"], oldExp)
	}

	// Once the old key is pruned, only the re-signed token works.
	f.clock.Advance(DefaultRetention)
	if removed, err := f.keys.Prune(); err != nil || len(removed) != 1 {
		t.Fatalf("Prune = %v, %v; want one key removed", removed, err)
	}
	if _, err := f.issuer.Refresh(tokens.RefreshToken, f.users); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("Refresh with a token of a pruned key = %v, want ErrInvalidRefreshToken", err)
	}
	if _, err := f.issuer.Refresh(got.RefreshToken, f.users); err != nil {
		t.Errorf("Refresh with the re-signed token: %v", err)
	}
}

func TestRefreshKeyFromOtherInstance(t *testing.T) {
	f := newIDPFixture(t)
	// Another instance on the same directory rotates and signs a user in.
	other, err := openKeyStoreWithKey(f.keyDir, f.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	if _, err := other.Rotate(); err != nil {
		t.Fatal(err)
	}
	otherIssuer := *f.issuer
	otherIssuer.Keys = other
	u, err := f.users.Authenticate("demo@example.com", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := otherIssuer.Issue(u)
	if err != nil {
		t.Fatal(err)
	}

	// This instance has not reloaded, but finds the new key.
	if _, err := f.issuer.Refresh(tokens.RefreshToken, f.users); err != nil {
		t.Errorf("Refresh of a token signed by a key another instance created: %v", err)
	}
}

func TestRefreshRejects(t *testing.T) {
	tests := []struct {
		name    string
		token   func(t *testing.T, f *idpFixture, tokens *Tokens) string
		wantMsg string
	}{
		{
			name: "expired",
			token: func(t *testing.T, f *idpFixture, tokens *Tokens) string {
				f.clock.Advance(DefaultRefreshTTL + refreshSkew + time.Second)
				return tokens.RefreshToken
			},
			wantMsg: "expired",
		},
		{
			name: "access token",
			token: func(t *testing.T, f *idpFixture, tokens *Tokens) string {
				return tokens.AccessToken
			},
			wantMsg: "not a refresh token",
		},
		{
			name: "id token",
			token: func(t *testing.T, f *idpFixture, tokens *Tokens) string {
				return tokens.IDToken
			},
			wantMsg: "not a refresh token",
		},
		{
			name: "garbage",
			token: func(t *testing.T, f *idpFixture, tokens *Tokens) string {
				return "not-a-token"
			},
			wantMsg: "malformed",
		},
		{
			name: "tampered",
			token: func(t *testing.T, f *idpFixture, tokens *Tokens) string {
				parts := strings.Split(tokens.RefreshToken, ".")
				claims := payload(t, tokens.RefreshToken)
				claims["sub"] = "ops-0001"
				parts[1] = base64.RawURLEncoding.EncodeToString([]byte(mustJSON(t, claims)))
				return strings.Join(parts, ".")
			},
			wantMsg: "not verified",
		},
		{
			name: "unknown key",
			token: func(t *testing.T, f *idpFixture, tokens *Tokens) string {
				elsewhere, _ := openTestKeyStore(t, f.clock)
				i := *f.issuer
				i.Keys = elsewhere
				return issueFor(t, &i, f.users, "demo@example.com", "correct horse").RefreshToken
			},
			wantMsg: "not verified",
		},
		{
			name: "other issuer",
			token: func(t *testing.T, f *idpFixture, tokens *Tokens) string {
				i := *f.issuer
				i.Issuer = "https://elsewhere.example.com"
				return issueFor(t, &i, f.users, "demo@example.com", "correct horse").RefreshToken
			},
			wantMsg: "iss",
		},
		{
			name: "other client",
			token: func(t *testing.T, f *idpFixture, tokens *Tokens) string {
				i := *f.issuer
				i.ClientID = "other-client"
				return issueFor(t, &i, f.users, "demo@example.com", "correct horse").RefreshToken
			},
			wantMsg: "issued to another client",
		},
		{
			name: "user removed",
			token: func(t *testing.T, f *idpFixture, tokens *Tokens) string {
				replaceFile(t, f.usersPath, `{"users":[]}`, time.Now().Add(time.Hour))
				f.clock.Advance(2 * time.Second)
				return tokens.RefreshToken
			},
			wantMsg: "user no longer exists",
		},
		{
			name: "password changed",
			token: func(t *testing.T, f *idpFixture, tokens *Tokens) string {
				// Same user, the hash of "s3cret" instead.
				replaceFile(t, f.usersPath, `{"users":[{"email":"demo@example.com",
					"password_hash":"$2a$10$x/3zjh9SHU7GoXPQxJmraOAfO2b3TGLxXnfZ7MlSMmtpdewNlCOWK"}]}`, time.Now().Add(time.Hour))
				f.clock.Advance(2 * time.Second)
				return tokens.RefreshToken
			},
			wantMsg: "password changed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newIDPFixture(t)
			tokens := f.signIn(t, "demo@example.com", "correct horse")
			token := tt.token(t, f, tokens)

			got, err := f.issuer.Refresh(token, f.users)
			if !errors.Is(err, ErrInvalidRefreshToken) || got != nil {
				t.Fatalf("Refresh = %v, %v; want nil, ErrInvalidRefreshToken", got, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Refresh error %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestRefreshJustBeforeExpiry(t *testing.T) {
	f := newIDPFixture(t)
	tokens := f.signIn(t, "demo@example.com", "correct horse")
	f.clock.Advance(DefaultRefreshTTL - time.Second)
	if _, err := f.issuer.Refresh(tokens.RefreshToken, f.users); err != nil {
		t.Errorf("Refresh a second before expiry: %v", err)
	}
}

func TestIssuerConfig(t *testing.T) {
	keys, _ := openTestKeyStore(t, newFakeClock())
	user := &User{Email: "demo@example.com", Sub: "s", hash: []byte("h")}
	tests := []struct {
		name    string
		issuer  Issuer
		wantMsg string
	}{
		{"no issuer", Issuer{ClientID: "c", Keys: keys}, "issuer URL is empty"},
		{"no client", Issuer{Issuer: "i", Keys: keys}, "client ID is empty"},
		{"no keys", Issuer{Issuer: "i", ClientID: "c"}, "no key store"},
		{"sub-second TTL", Issuer{Issuer: "i", ClientID: "c", Keys: keys, TokenTTL: time.Millisecond}, "not at least 1s"},
		{"TTL beyond retention", Issuer{Issuer: "i", ClientID: "c", Keys: keys, TokenTTL: 25 * time.Hour}, "less than twice the token lifetime"},
		{"ok", Issuer{Issuer: "i", ClientID: "c", Keys: keys, TokenTTL: 24 * time.Hour}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.issuer.Issue(user)
			if tt.wantMsg == "" {
				if err != nil {
					t.Errorf("Issue: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Issue error %v, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

// issueFor signs email in and issues tokens with i.
func issueFor(t *testing.T, i *Issuer, users *Users, email, password string) *Tokens {
	t.Helper()
	u, err := users.Authenticate(email, password)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := i.Issue(u)
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestKeyStoreDefaultsMatchIssuer(t *testing.T) {
	if DefaultRetention < 2*DefaultTokenTTL {
		t.Errorf("DefaultRetention %v is less than twice DefaultTokenTTL %v", DefaultRetention, DefaultTokenTTL)
	}
}
