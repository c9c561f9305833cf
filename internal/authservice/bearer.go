package authservice

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-upload-gateway/upload-gateway/internal/csrf"
	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/jwtauth"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
	"github.com/caddy-upload-gateway/upload-gateway/internal/tokensource"
)

// Principal is an authenticated user.
type Principal struct {
	ID       string
	Username string
	Email    string
	Role     roles.Role
	Groups   []string
	TokenUse string

	// EmailVerified is the token's email_verified claim: whether the
	// identity provider checked that the user owns Email.
	EmailVerified bool
}

// ErrNoToken is returned by [Checker.Authenticate] when the request
// carries no token.
var ErrNoToken = errors.New("no bearer token")

// TokenVerifier checks bearer tokens; usually a *jwtauth.Verifier.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*jwtauth.Claims, error)
}

// Checker is the per-request token check of the upload_auth handler and
// authentication provider.
type Checker struct {
	Verifier TokenVerifier
	Roles    roles.Mapper // maps the user's groups to a role
	// Source says where a token is read when the request has no
	// Authorization header: cookies, a query parameter.
	Source tokensource.Source
	// Origins checks a state-changing request authenticated by a cookie
	// (package csrf).
	Origins *csrf.Policy
}

// Authenticate verifies r's token, within r's context: the Authorization
// header's RFC 6750 bearer token, else a cookie's, else the query
// parameter's. A state-changing request authenticated by a cookie must
// come from an allowed origin, or it is refused with an error wrapping
// csrf.ErrOrigin before its token is looked at. A token not from the header
// is removed from the query of r once verified, so that the handlers after
// the check do not see it. Errors are [ErrNoToken], that one, or those of
// Verifier.
func (c *Checker) Authenticate(r *http.Request) (*Principal, error) {
	token, from, ok := c.Source.Token(r)
	if !ok {
		return nil, ErrNoToken
	}
	if from == tokensource.FromCookie {
		if err := c.Origins.Check(r); err != nil {
			return nil, err
		}
	}
	claims, err := c.Verifier.Verify(r.Context(), token)
	if err != nil {
		return nil, err
	}
	if from != tokensource.FromHeader {
		c.Source.Strip(r)
	}
	role, groups := c.Roles.Resolve(claims.All)
	return &Principal{
		ID:       claims.Subject,
		Username: claims.Username,
		Email:    claims.Email,
		Role:     role,
		Groups:   groups,
		TokenUse: claims.TokenUse,

		EmailVerified: emailVerified(claims.All),
	}, nil
}

// Metadata is the user's attributes besides the id, by the names Caddy's
// authentication handler gives them (`{http.auth.user.<name>}`).
func (p *Principal) Metadata() map[string]string {
	return map[string]string{
		"username":       p.Username,
		"email":          p.Email,
		"email_verified": strconv.FormatBool(p.EmailVerified),
		"role":           string(p.Role),
		"groups":         strings.Join(p.Groups, ","),
		"token_use":      p.TokenUse,
	}
}

// emailVerified reads the email_verified claim: true, or "true" as some
// identity providers write it.
func emailVerified(claims map[string]any) bool {
	switch v := claims["email_verified"].(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

// Rejection returns the reason code of an error of [Checker.Authenticate]
// ("missing_token" or a jwtauth reason) and whether it looks like an
// attack rather than an ordinary failure such as an expired token.
func Rejection(err error) (reason string, attack bool) {
	switch {
	case errors.Is(err, ErrNoToken):
		return "missing_token", false
	case errors.Is(err, csrf.ErrOrigin):
		return "csrf_origin", true
	}
	reason = jwtauth.Reason(err)
	return reason, slices.Contains([]string{"bad_signature", "bad_alg", "unknown_kid", "malformed", "too_large"}, reason)
}

// LogRejection logs a rejected token with its reason code (see
// [Rejection]): attacks at Warn, ordinary failures (missing, expired) at
// Debug. Tokens are never logged. It returns the reason code.
func LogRejection(logger *zap.Logger, r *http.Request, err error) string {
	reason, attack := Rejection(err)
	level := zapcore.DebugLevel
	if attack {
		level = zapcore.WarnLevel
	}
	if c := logger.Check(level, "token rejected"); c != nil {
		c.Write(zap.String("reason", reason), zap.String("remote_ip", r.RemoteAddr), zap.String("path", r.URL.Path))
	}
	return reason
}

// Challenge returns the WWW-Authenticate header for a request
// [Checker.Authenticate] refused.
func Challenge(err error) string {
	if errors.Is(err, ErrNoToken) {
		return `Bearer realm="upload-gateway"`
	}
	return `Bearer realm="upload-gateway", error="invalid_token"`
}

// AllowOrigin lets a page of one of the allowed origins read the refusal
// it is about to get (an expired token's 401, say): it sets the CORS
// headers of the answer, with credentials, for the request's Origin when
// Origins allows it. A page of another origin gets none, so the browser
// keeps the answer from it.
func (c Checker) AllowOrigin(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || c.Origins == nil || !c.Origins.Allows(origin) {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Expose-Headers", "WWW-Authenticate, Retry-After")
	h.Add("Vary", "Origin")
}

// Refuse answers a request [Checker.Authenticate] refused: 401 with its challenge,
// 403 [CodeCSRFOrigin] when the error wraps csrf.ErrOrigin (a cookie
// request from another site), or 502 when the identity provider's keys
// could not be loaded. It returns the status.
func Refuse(w http.ResponseWriter, err error) int {
	status, code, msg := http.StatusUnauthorized, "INVALID_TOKEN", "the token is invalid or expired"
	switch {
	case errors.Is(err, jwtauth.ErrKeysUnavailable):
		status, code, msg = http.StatusBadGateway, "IDENTITY_PROVIDER_UNAVAILABLE", "the identity provider's keys could not be loaded"
	case errors.Is(err, csrf.ErrOrigin):
		status, code, msg = http.StatusForbidden, CodeCSRFOrigin, messageCSRFOrigin
	case errors.Is(err, ErrNoToken):
		code, msg = "UNAUTHENTICATED", "authentication required"
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", Challenge(err))
	}
	_ = envelope.WriteError(w, status, code, msg)
	return status
}

// IsCORSPreflight reports whether r is a CORS preflight, which carries no
// credentials and so passes without a token: an OPTIONS request with the
// Origin and Access-Control-Request-Method headers and no body. Any other
// OPTIONS request needs a token like every request, since the handlers
// after the check (a reverse proxy, say) may act on it.
func IsCORSPreflight(r *http.Request) bool {
	if r.Method != http.MethodOptions ||
		r.Header.Get("Origin") == "" ||
		r.Header.Get("Access-Control-Request-Method") == "" ||
		len(r.TransferEncoding) > 0 || r.ContentLength > 0 {
		return false
	}
	if r.ContentLength == 0 {
		return true
	}
	// The length is unknown. Over HTTP/1.1 (chunked, refused above) and
	// HTTP/2 (a preflight ends its stream with the headers, so Go sets 0)
	// that means a body may follow: not a preflight. Go's HTTP/3 server
	// leaves the length unknown even when the stream ended with the headers,
	// as a browser's preflight does; such a body reads EOF at once, and a
	// body with data is put back for the handlers after this one. Peeking
	// only there means a client holding a stream open cannot stall here.
	if r.ProtoMajor != 3 {
		return false
	}
	return bodyIsEmpty(r)
}

// bodyIsEmpty reads one byte of r's body to see whether there is one. If
// there is, the byte is put back in front of the rest.
func bodyIsEmpty(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	var b [1]byte
	n, err := io.ReadFull(r.Body, b[:])
	if n == 0 && errors.Is(err, io.EOF) {
		r.Body = http.NoBody
		return true
	}
	r.Body = peekedBody{Reader: io.MultiReader(bytes.NewReader(b[:n]), r.Body), Closer: r.Body}
	return false
}

// peekedBody is a request body with bytes read ahead put back.
type peekedBody struct {
	io.Reader
	io.Closer
}
