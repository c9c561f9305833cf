package jwtauth

import (
	"errors"
)

// Reason codes returned by [Reason]. They are stable, lower-case and
// snake_case, so they can be used as metric labels and log fields.
const (
	ReasonMalformed       = "malformed"        // not a compact JWS, bad base64 or JSON, crit header, wrongly typed claim
	ReasonTooLarge        = "too_large"        // longer than Config.MaxTokenBytes
	ReasonBadAlg          = "bad_alg"          // header alg not allowed, or not usable with the selected key
	ReasonUnknownKID      = "unknown_kid"      // no kid, or kid not in the key set even after a refresh
	ReasonBadSignature    = "bad_signature"    // signature does not verify with the selected key
	ReasonExpired         = "expired"          // exp is in the past, beyond the leeway
	ReasonNotYetValid     = "not_yet_valid"    // nbf or iat is in the future, beyond the leeway
	ReasonBadIssuer       = "bad_issuer"       // iss differs from Config.Issuer
	ReasonBadAudience     = "bad_audience"     // aud (id token) or client_id (access token) not in Config.Audiences
	ReasonBadTokenUse     = "bad_token_use"    // token_use is not id/access, or not the one required
	ReasonMissingClaim    = "missing_claim"    // a required claim (iss, sub, exp, token_use, aud/client_id) is absent
	ReasonKeysUnavailable = "keys_unavailable" // no key set could be loaded; see ErrKeysUnavailable
)

// Sentinel errors. Every error returned by [Verifier.Verify] matches
// exactly one of ErrTokenInvalid or ErrKeysUnavailable with [errors.Is];
// [Reason] gives the finer cause.
var (
	// ErrTokenInvalid means the token was rejected: the client should get
	// 401 Unauthorized.
	ErrTokenInvalid = errors.New("jwtauth: invalid token")

	// ErrTokenExpired means the token's exp is in the past. It also matches
	// ErrTokenInvalid, so callers that only test for ErrTokenInvalid treat
	// expired tokens as invalid; callers that want to tell the client to
	// refresh its token can test for ErrTokenExpired first.
	ErrTokenExpired error = &childError{msg: "jwtauth: token expired", parent: ErrTokenInvalid}

	// ErrKeysUnavailable means no verification keys could be loaded: the
	// JWKS fetch (or Config.Keys) failed and nothing is cached yet. The
	// token was not judged. It does NOT match ErrTokenInvalid. Callers
	// usually answer 503 Service Unavailable (the identity provider or the
	// network is down); answering 401 is also safe, but hides an outage
	// behind "please log in again". The returned error wraps the fetch
	// error, and the caller's context error when the caller gave up waiting.
	ErrKeysUnavailable = errors.New("jwtauth: verification keys unavailable")
)

// childError is a sentinel that also matches its parent sentinel.
type childError struct {
	msg    string
	parent error
}

func (e *childError) Error() string { return e.msg }
func (e *childError) Unwrap() error { return e.parent }

// verifyError is the type of every error returned by Verify. Its message never
// contains the token or any claim value taken from it.
type verifyError struct {
	reason   string
	sentinel error  // ErrTokenInvalid, ErrTokenExpired or ErrKeysUnavailable
	detail   string // short, token-free explanation
	cause    error  // only for ErrKeysUnavailable: the fetch or context error
}

func (e *verifyError) Error() string {
	msg := e.sentinel.Error() + " (" + e.reason + ")"
	if e.detail != "" {
		msg += ": " + e.detail
	}
	if e.cause != nil {
		msg += ": " + e.cause.Error()
	}
	return msg
}

// Unwrap exposes the sentinel and, for ErrKeysUnavailable, the cause.
func (e *verifyError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.sentinel, e.cause}
	}
	return []error{e.sentinel}
}

func reject(reason, detail string) error {
	sentinel := ErrTokenInvalid
	if reason == ReasonExpired {
		sentinel = ErrTokenExpired
	}
	return &verifyError{reason: reason, sentinel: sentinel, detail: detail}
}

func keysUnavailable(cause error) error {
	return &verifyError{reason: ReasonKeysUnavailable, sentinel: ErrKeysUnavailable, cause: cause}
}

// Reason returns the machine-readable reason code of an error returned by
// [Verifier.Verify]: one of the Reason* constants. It returns "" for nil and
// for errors that did not come from this package.
func Reason(err error) string {
	var ve *verifyError
	if errors.As(err, &ve) {
		return ve.reason
	}
	switch {
	case errors.Is(err, ErrKeysUnavailable):
		return ReasonKeysUnavailable
	case errors.Is(err, ErrTokenExpired):
		return ReasonExpired
	}
	return ""
}
