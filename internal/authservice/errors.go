package authservice

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-upload-gateway/upload-gateway/internal/cognito"
	"github.com/caddy-upload-gateway/upload-gateway/internal/csrf"
	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
	"github.com/caddy-upload-gateway/upload-gateway/internal/ratelimit"
)

// statusClientClosedRequest is the status recorded when the client went
// away (nginx's 499).
const statusClientClosedRequest = 499

// CodeCSRFOrigin is the error code of a cookie-authenticated request
// another site sent (package csrf), answered 403.
const CodeCSRFOrigin = "CSRF_ORIGIN"

const messageCSRFOrigin = "the request's Origin is not this site or an allowed origin"

var (
	errNotJSON = errors.New("the request body must be application/json")
	errKeys    = errors.New("reading the signing keys")
)

// badRequest is a request the client must fix; its text is what the
// client reads.
type badRequest string

func (e badRequest) Error() string { return string(e) }

// limitedError is a login attempt refused by a rate limit.
type limitedError struct{ retryAfter time.Duration }

func (e *limitedError) Error() string { return "too many login attempts" }

// classify maps an error to the status, code and message the client gets,
// and the Retry-After header ("" for none). It is the one place where
// errors become statuses.
func classify(err error) (status int, code, message, retryAfter string) {
	var bad badRequest
	var limited *limitedError
	var challenge *cognito.ChallengeError
	switch {
	case errors.As(err, &bad):
		return http.StatusBadRequest, "BAD_REQUEST", string(bad), ""
	case errors.Is(err, csrf.ErrOrigin):
		return http.StatusForbidden, CodeCSRFOrigin, messageCSRFOrigin, ""
	case errors.Is(err, errNoSession):
		return http.StatusUnauthorized, "UNAUTHENTICATED", "not signed in", ""
	case errors.Is(err, errNotJSON):
		return http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "send application/json", ""
	case errors.As(err, &limited):
		return http.StatusTooManyRequests, "TOO_MANY_ATTEMPTS", "too many login attempts; try again later",
			strconv.Itoa(int(limited.retryAfter.Seconds() + 1))
	case errors.Is(err, ratelimit.ErrBusy):
		return http.StatusServiceUnavailable, "LOGIN_BUSY", "too many sign-ins at once; try again shortly", "1"
	case errors.Is(err, context.Canceled):
		return statusClientClosedRequest, "CLIENT_CLOSED_REQUEST", "the client closed the request", ""
	case errors.Is(err, cognito.ErrInvalidCredentials), errors.Is(err, localidp.ErrInvalidCredentials):
		return http.StatusUnauthorized, "INVALID_CREDENTIALS", "wrong email or password", ""
	case errors.Is(err, localidp.ErrInvalidRefreshToken):
		return http.StatusUnauthorized, "INVALID_TOKEN", "the refresh token is invalid or expired", ""
	case errors.As(err, &challenge):
		return http.StatusForbidden, challenge.Name, "the account must complete the " + challenge.Name + " challenge before signing in here", ""
	case errors.Is(err, cognito.ErrUserNotConfirmed):
		return http.StatusForbidden, "USER_NOT_CONFIRMED", "the account is not confirmed", ""
	case errors.Is(err, cognito.ErrPasswordResetRequired):
		return http.StatusForbidden, "PASSWORD_RESET_REQUIRED", "the password must be reset", ""
	case errors.Is(err, cognito.ErrTooManyRequests):
		return http.StatusTooManyRequests, "TOO_MANY_ATTEMPTS", "too many attempts; try again later", ""
	case errors.Is(err, cognito.ErrUnavailable):
		return http.StatusBadGateway, "IDENTITY_PROVIDER_UNAVAILABLE", "the identity provider is unavailable", ""
	case errors.Is(err, errKeys):
		return http.StatusInternalServerError, "KEYS_UNAVAILABLE", "the signing keys could not be read", ""
	}
	return http.StatusBadGateway, "IDENTITY_PROVIDER_ERROR", "the identity provider failed", ""
}

// fail answers err and records it in o.
func (s *Service) fail(w http.ResponseWriter, o *Outcome, err error) {
	status, code, msg, retryAfter := classify(err)
	o.Status, o.Code = status, code
	switch {
	case status == http.StatusTooManyRequests:
		o.Result = "rate_limited"
	case status == http.StatusServiceUnavailable:
		o.Result = "busy" // expected under a flood: not worth an error line
	case status >= 500 && status != statusClientClosedRequest:
		o.Result, o.Err = "failed", err
	case status == http.StatusBadRequest || status == http.StatusUnsupportedMediaType:
		o.Result = "rejected"
	default:
		o.Result = "denied"
	}
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	_ = envelope.WriteError(w, status, code, msg)
}
