package localidp

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Defaults of [Issuer].
const (
	DefaultTokenTTL   = time.Hour
	DefaultRefreshTTL = 30 * 24 * time.Hour
	// DefaultReuseGrace is the ReuseGrace of [Open]: Okta's default for
	// rotated refresh tokens.
	DefaultReuseGrace = 30 * time.Second
)

// CognitoScope is the scope claim of access tokens, the one Cognito gives
// tokens from its own sign-in API.
const CognitoScope = "aws.cognito.signin.user.admin"

// refreshSkew is the clock difference between gateway instances that
// Refresh tolerates on the refresh token's iat and exp.
const refreshSkew = time.Minute

// Issuer issues tokens shaped like those of an Amazon Cognito user pool,
// signed with the current key of Keys. Its fields must not change while it
// is in use; Issue and Refresh may then be called concurrently.
type Issuer struct {
	// Issuer is the iss claim, the URL the verifier is configured with.
	// Required.
	Issuer string
	// ClientID is the aud claim of ID tokens and the client_id claim of
	// access tokens. Required.
	ClientID string
	// TokenTTL is the lifetime of ID and access tokens, in whole seconds.
	// Zero means DefaultTokenTTL (1h). It must be at most half of the key
	// store's retention.
	TokenTTL time.Duration
	// RefreshTTL is the lifetime of refresh tokens. Zero means
	// DefaultRefreshTTL (30 days).
	RefreshTTL time.Duration
	// Keys holds the signing keys. Required.
	Keys *KeyStore
	// Revocations, when set, makes refresh tokens single-use: Refresh
	// returns a new refresh token and records the one it was given as
	// used, and [Issuer.Revoke] ends sessions. Without it, Refresh returns
	// the refresh token it was given, which stays valid until it expires.
	Revocations *Revocations
	// ReuseGrace, with Revocations, is how long after its first use a
	// refresh token may be used again and get tokens of the same session:
	// two tabs of a page renewing their session cookie at once, or a
	// client retrying a refresh whose answer was lost. A use after it
	// revokes the session (a stolen token replayed). Zero: none; [Open]
	// sets DefaultReuseGrace.
	ReuseGrace time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Tokens is the result of a sign-in or a refresh. Its JSON form is that of
// an OAuth 2.0 token response.
type Tokens struct {
	IDToken      string `json:"id_token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// ExpiresIn is the lifetime of the ID and access tokens in seconds.
	ExpiresIn int `json:"expires_in"`
	// TokenType is always "Bearer".
	TokenType string `json:"token_type"`
}

// Issue returns new ID, access and refresh tokens for u, who has just
// signed in.
func (i *Issuer) Issue(u *User) (*Tokens, error) {
	if err := i.check(); err != nil {
		return nil, err
	}
	if u == nil {
		return nil, errors.New("localidp: issuing tokens: no user")
	}
	key, err := i.Keys.Current()
	if err != nil {
		return nil, err
	}
	now := i.now()
	tokens, err := i.issue(key, u, now, now)
	if err != nil {
		return nil, err
	}
	tokens.RefreshToken, err = i.refreshToken(key, u, uuid.NewString(), now, now.Add(i.refreshTTL()), now)
	if err != nil {
		return nil, err
	}
	return tokens, nil
}

// Refresh checks refreshToken and returns new ID and access tokens for its
// user, with the user's current groups. The refresh token must be signed
// by a key of Keys (reloading them once if its kid is unknown), be
// unexpired (allowing a minute of clock difference between instances) and
// issued by this Issuer and ClientID, and its user must still be in users
// with the same password. Otherwise the error wraps
// [ErrInvalidRefreshToken] and says why.
//
// Its token_generation claim must equal the user's token_generation in the
// users file, which an operator raises to end all of the user's sessions.
//
// With [Issuer.Revocations] set, the refresh token is used up: the result
// holds a new one for the same session, with the same expiry, and the one
// given stops working. Presenting a used refresh token again means two
// parties hold it, so it ends the whole session (every refresh token
// descended from the same sign-in) as the OAuth 2.0 security best current
// practice asks. A refresh token of a revoked session is refused.
//
// Without Revocations, like Cognito, Refresh does not extend the refresh
// token: the result holds the same one, unless it was signed by a key
// other than the current one. Then the result holds a copy signed by the
// current key, with the same expiry, so that the session outlives the old
// key's retention.
func (i *Issuer) Refresh(refreshToken string, users *Users) (*Tokens, error) {
	if err := i.check(); err != nil {
		return nil, err
	}
	if users == nil {
		return nil, errors.New("localidp: refreshing tokens: no users")
	}
	tok, kid, now, err := i.parseRefresh(refreshToken)
	if err != nil {
		return nil, err
	}
	authTime, ok := numericClaim(tok, "auth_time")
	if !ok {
		return nil, invalid("no auth_time")
	}

	u, ok := users.bySubject(tok.Subject())
	if !ok {
		return nil, invalid("user no longer exists")
	}
	if cred := stringClaim(tok, "cred"); cred != u.credential() {
		return nil, invalid("password changed since sign-in")
	}
	if gen, _ := numericClaim(tok, "token_generation"); gen != u.Generation {
		return nil, invalid("the user's sessions were revoked (token_generation changed)")
	}

	key, err := i.Keys.Current()
	if err != nil {
		return nil, err
	}
	sid := sessionID(tok)
	if r := i.Revocations; r != nil {
		revoked, err := r.revoked(sid, tok.Expiration())
		if err != nil {
			return nil, err
		}
		if revoked {
			return nil, invalid("the session was revoked")
		}
		first, firstAt, err := r.use(tok.JwtID(), tok.Expiration(), now)
		if err != nil {
			return nil, err
		}
		if !first && (i.ReuseGrace <= 0 || now.Sub(firstAt) > i.ReuseGrace) {
			if err := r.revoke(sid, tok.Expiration()); err != nil {
				return nil, err
			}
			return nil, invalid("used before; the session is revoked")
		}
		// A second use within ReuseGrace (two tabs renewing at once, a
		// retry whose answer was lost) gets tokens of the same session.
	}
	tokens, err := i.issue(key, u, time.Unix(authTime, 0), now)
	if err != nil {
		return nil, err
	}
	tokens.RefreshToken = refreshToken
	if kid != key.KeyID() || i.Revocations != nil {
		tokens.RefreshToken, err = i.refreshToken(key, u, sid, time.Unix(authTime, 0), tok.Expiration(), now)
		if err != nil {
			return nil, err
		}
	}
	return tokens, nil
}

// Revoke ends the session of refreshToken: it and every refresh token
// issued from the same sign-in stop working. A refresh token that is
// expired needs no revoking and is accepted. Other refresh tokens this
// Issuer would not accept give an error wrapping [ErrInvalidRefreshToken].
// It needs [Issuer.Revocations].
func (i *Issuer) Revoke(refreshToken string) error {
	if err := i.check(); err != nil {
		return err
	}
	if i.Revocations == nil {
		return errors.New("localidp: revoking a session: no revocation directory")
	}
	tok, _, _, err := i.parseRefresh(refreshToken)
	if errors.Is(err, errRefreshExpired) {
		return nil
	}
	if err != nil {
		return err
	}
	return i.Revocations.revoke(sessionID(tok), tok.Expiration())
}

// sessionID returns the session a refresh token belongs to: its sid
// claim, or, for a token issued before sessions had ids, its jti.
func sessionID(tok jwt.Token) string {
	if sid := stringClaim(tok, "sid"); sid != "" {
		return sid
	}
	return tok.JwtID()
}

// errRefreshExpired is wrapped by the error parseRefresh returns for an
// expired refresh token.
var errRefreshExpired = errors.New("expired")

// parseRefresh verifies refreshToken's signature and its standard claims,
// and returns it with its kid and the time it was checked at.
func (i *Issuer) parseRefresh(refreshToken string) (tok jwt.Token, kid string, now time.Time, err error) {
	msg, err := jws.Parse([]byte(refreshToken))
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, "", now, invalid("malformed")
	}
	kid = msg.Signatures()[0].ProtectedHeaders().KeyID()
	i.Keys.reloadForKid(kid)

	now = i.now()
	tok, err = jwt.Parse([]byte(refreshToken),
		jwt.WithKeySet(i.Keys.PublicSet()),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		jwt.WithAcceptableSkew(refreshSkew),
		jwt.WithIssuer(i.Issuer),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
		jwt.WithRequiredClaim(jwt.JwtIDKey),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired()):
		return nil, kid, now, fmt.Errorf("%w: %w", ErrInvalidRefreshToken, errRefreshExpired)
	case jwt.IsValidationError(err):
		return nil, kid, now, invalid(err.Error()) // names the claim
	case err != nil:
		return nil, kid, now, invalid("signature not verified by a published key")
	}
	if use := stringClaim(tok, "token_use"); use != "refresh" {
		return nil, kid, now, invalid("not a refresh token")
	}
	if cid := stringClaim(tok, "client_id"); cid != i.ClientID {
		return nil, kid, now, invalid("issued to another client")
	}
	return tok, kid, now, nil
}

// invalid returns an error wrapping ErrInvalidRefreshToken that gives
// reason.
func invalid(reason string) error {
	return fmt.Errorf("%w: %s", ErrInvalidRefreshToken, reason)
}

// refreshToken returns a refresh token for u in session sid, signed with
// key.
func (i *Issuer) refreshToken(key jwk.Key, u *User, sid string, authTime, exp, now time.Time) (string, error) {
	return sign(key, map[string]any{
		"iss":              i.Issuer,
		"sub":              u.Sub,
		"client_id":        i.ClientID,
		"token_use":        "refresh",
		"auth_time":        authTime.Unix(),
		"iat":              now.Unix(),
		"exp":              exp.Unix(),
		"jti":              uuid.NewString(),
		"sid":              sid,
		"cred":             u.credential(),
		"token_generation": u.Generation,
	})
}

// issue returns ID and access tokens for u, signed with key.
func (i *Issuer) issue(key jwk.Key, u *User, authTime, now time.Time) (*Tokens, error) {
	ttl := i.tokenTTL()
	common := func() map[string]any {
		c := map[string]any{
			"iss":       i.Issuer,
			"sub":       u.Sub,
			"auth_time": authTime.Unix(),
			"iat":       now.Unix(),
			"exp":       now.Add(ttl).Unix(),
			"jti":       uuid.NewString(),
		}
		if len(u.Groups) > 0 {
			c["cognito:groups"] = u.Groups
		}
		return c
	}

	id := common()
	id["aud"] = i.ClientID
	id["token_use"] = "id"
	id["email"] = u.Email
	id["email_verified"] = true
	id["cognito:username"] = u.Sub
	idToken, err := sign(key, id)
	if err != nil {
		return nil, err
	}

	access := common()
	access["client_id"] = i.ClientID
	access["token_use"] = "access"
	access["username"] = u.Sub
	access["scope"] = CognitoScope
	accessToken, err := sign(key, access)
	if err != nil {
		return nil, err
	}

	return &Tokens{
		IDToken:     idToken,
		AccessToken: accessToken,
		ExpiresIn:   int(ttl / time.Second),
		TokenType:   "Bearer",
	}, nil
}

// check reports an Issuer that cannot issue tokens.
func (i *Issuer) check() error {
	switch {
	case i.Issuer == "":
		return errors.New("localidp: issuer URL is empty")
	case i.ClientID == "":
		return errors.New("localidp: client ID is empty")
	case i.Keys == nil:
		return errors.New("localidp: no key store")
	case i.TokenTTL < 0 || i.TokenTTL > 0 && i.TokenTTL < time.Second:
		return fmt.Errorf("localidp: token lifetime %v is not at least 1s", i.TokenTTL)
	case i.RefreshTTL < 0:
		return fmt.Errorf("localidp: refresh token lifetime %v is negative", i.RefreshTTL)
	case i.Keys.retention() < 2*i.tokenTTL():
		return fmt.Errorf("localidp: key retention %v is less than twice the token lifetime %v", i.Keys.retention(), i.tokenTTL())
	}
	return nil
}

func (i *Issuer) now() time.Time {
	if i.Now != nil {
		return i.Now()
	}
	return time.Now()
}

// tokenTTL and refreshTTL return TokenTTL and RefreshTTL or their
// defaults; check has refused negative values.
func (i *Issuer) tokenTTL() time.Duration {
	return cmp.Or(i.TokenTTL.Truncate(time.Second), DefaultTokenTTL)
}

func (i *Issuer) refreshTTL() time.Duration { return cmp.Or(i.RefreshTTL, DefaultRefreshTTL) }

// sign returns claims as a compact JWS signed with key (ES256), whose
// header names the key's kid.
func sign(key jwk.Key, claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("localidp: encoding claims: %w", err)
	}
	b, err := jws.Sign(payload, jws.WithKey(jwa.ES256, key))
	if err != nil {
		return "", fmt.Errorf("localidp: signing token: %w", err)
	}
	return string(b), nil
}

// stringClaim returns the private claim name of tok if it is a string.
func stringClaim(tok jwt.Token, name string) string {
	v, _ := tok.Get(name)
	s, _ := v.(string)
	return s
}

// numericClaim returns the private claim name of tok if it is an integer.
// JSON numbers are decoded as float64, or as json.Number if a package in
// the program told jwx to (a process-wide setting).
func numericClaim(tok jwt.Token, name string) (int64, bool) {
	v, _ := tok.Get(name)
	switch n := v.(type) {
	case float64:
		return int64(n), n == float64(int64(n))
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}
