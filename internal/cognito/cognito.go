// Package cognito logs users in against an Amazon Cognito user pool app client and refreshes
// their tokens. It is the gateway's login endpoint's only contact with Cognito.
//
// A Client sends InitiateAuth with the USER_PASSWORD_AUTH flow (Login) or the
// REFRESH_TOKEN_AUTH flow (Refresh), which the app client must allow, and RevokeToken (Revoke:
// sign-out; the default for app clients created since 2021). If the app client has a secret,
// pass it to New: every request then carries its SECRET_HASH.
//
// It returns the tokens as Cognito issued them and verifies nothing: checking signatures,
// issuer, audience and expiry is the job of whoever accepts the tokens later.
//
// # Errors
//
// Cognito's errors are translated here; callers see only the errors below (test them with
// errors.Is or errors.As), each with the HTTP status a login endpoint should answer:
//
//	ErrInvalidCredentials     401  wrong password or unknown user (the same error for both, so
//	                               it cannot be used to find out which users exist); also an
//	                               invalid or expired refresh token, a disabled user
//	*ChallengeError           401  Cognito wants another step (NEW_PASSWORD_REQUIRED, MFA, ...)
//	  (errors.Is ErrChallenge)     before it issues tokens; 403 if the endpoint cannot answer
//	                               challenges. Name says which one.
//	ErrUserNotConfirmed       403  the user has not confirmed the sign-up yet
//	ErrPasswordResetRequired  403  an administrator requires a password reset
//	ErrTooManyRequests        429  Cognito's request rate or attempt limits
//	ErrUnavailable            502  Cognito could not be reached, answered 5xx or without tokens;
//	                          504  if errors.Is(err, context.DeadlineExceeded) as well: a timeout
//	context.Canceled          499  the caller's context was cancelled (wrapped, test with errors.Is)
//
// Anything else (an unknown app client, a flow the app client does not allow, a failing Lambda
// trigger, a wrong client secret, ...) is a configuration problem: the error carries Cognito's
// message but wraps nothing, and callers should answer 500 and log it.
//
// The error texts never contain passwords or tokens. ErrInvalidCredentials's text is fixed, so it
// may be shown to clients; other texts may contain the username and should only be logged.
package cognito

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/caddy-upload-gateway/upload-gateway/internal/awserr"
)

// API is the part of *cognitoidentityprovider.Client that Client calls.
type API interface {
	InitiateAuth(ctx context.Context, in *cip.InitiateAuthInput, optFns ...func(*cip.Options)) (*cip.InitiateAuthOutput, error)
	RevokeToken(ctx context.Context, in *cip.RevokeTokenInput, optFns ...func(*cip.Options)) (*cip.RevokeTokenOutput, error)
}

// The errors Login and Refresh return; see the package documentation for the HTTP status each
// stands for.
var (
	// ErrInvalidCredentials: wrong password, unknown user, invalid or expired refresh token.
	ErrInvalidCredentials = errors.New("invalid username or password")
	// ErrChallenge matches every *ChallengeError (errors.Is).
	ErrChallenge = errors.New("cognito: authentication challenge")
	// ErrUserNotConfirmed: the user exists but has not confirmed the sign-up.
	ErrUserNotConfirmed = errors.New("cognito: user is not confirmed")
	// ErrPasswordResetRequired: the user has to reset the password first.
	ErrPasswordResetRequired = errors.New("cognito: password reset required")
	// ErrTooManyRequests: Cognito throttled the request or a limit was exceeded.
	ErrTooManyRequests = errors.New("cognito: too many requests")
	// ErrUnavailable: Cognito was unreachable, timed out, answered 5xx or gave no tokens.
	ErrUnavailable = errors.New("cognito: unavailable")
)

// ChallengeError is returned when Cognito answers with a challenge instead of tokens, e.g.
// NEW_PASSWORD_REQUIRED for a user who still has the temporary password an administrator set.
// errors.Is(err, ErrChallenge) is true for it.
type ChallengeError struct {
	// Name is Cognito's challenge name, e.g. "NEW_PASSWORD_REQUIRED", "SOFTWARE_TOKEN_MFA".
	Name string
	// Session is the opaque session to pass to RespondToAuthChallenge. Treat it like a
	// credential: do not log it.
	Session string
	// Parameters are Cognito's ChallengeParameters (e.g. USER_ID_FOR_SRP, the username to
	// respond with).
	Parameters map[string]string
}

func (e *ChallengeError) Error() string { return "cognito: authentication challenge " + e.Name }

// Is makes errors.Is(err, ErrChallenge) true.
func (e *ChallengeError) Is(target error) bool { return target == ErrChallenge }

// Tokens are the tokens Cognito issued.
type Tokens struct {
	IDToken      string
	AccessToken  string
	RefreshToken string
	// ExpiresIn is the access token's lifetime in seconds as Cognito reports it (0 if it does
	// not; the emulator cognito-local never does: use the token's exp claim).
	ExpiresIn int32
	// TokenType is "Bearer" from Cognito ("" from cognito-local).
	TokenType string
}

// Client logs users in with one app client. It is safe for concurrent use.
type Client struct {
	api      API
	clientID string
	secret   []byte // nil: the app client has no secret
}

// New returns a Client for the app client clientID. clientSecret is the app client's secret, or
// "" if it has none.
func New(api API, clientID, clientSecret string) *Client {
	c := &Client{api: api, clientID: clientID}
	if clientSecret != "" {
		c.secret = []byte(clientSecret)
	}
	return c
}

// Login authenticates email and password with the USER_PASSWORD_AUTH flow. The email is sent as
// USERNAME as it is (pools whose usernames are emails accept it; Cognito compares it
// case-insensitively only if the pool is configured so).
func (c *Client) Login(ctx context.Context, email, password string) (*Tokens, error) {
	if email == "" || password == "" {
		return nil, ErrInvalidCredentials
	}
	return c.initiate(ctx, "login", types.AuthFlowTypeUserPasswordAuth, email, map[string]string{"USERNAME": email, "PASSWORD": password})
}

// Refresh gets new ID and access tokens for refreshToken with the REFRESH_TOKEN_AUTH flow. The
// returned RefreshToken is the new one if Cognito rotated it, otherwise refreshToken itself.
//
// username is only used for SECRET_HASH and may be "" if the app client has no secret. It must
// be the user's Cognito username, i.e. the access token's "username" claim (the ID token's
// "cognito:username"): in pools whose usernames are emails that is a UUID, not the email.
func (c *Client) Refresh(ctx context.Context, refreshToken, username string) (*Tokens, error) {
	if refreshToken == "" {
		return nil, ErrInvalidCredentials
	}
	if c.secret != nil && username == "" {
		return nil, errors.New("cognito: refresh: the app client has a secret, so the username is required")
	}
	t, err := c.initiate(ctx, "refresh", types.AuthFlowTypeRefreshTokenAuth, username, map[string]string{"REFRESH_TOKEN": refreshToken})
	if err == nil && t.RefreshToken == "" {
		t.RefreshToken = refreshToken
	}
	return t, err
}

// Revoke revokes refreshToken and the access tokens issued with it (RevokeToken): the session
// it belongs to ends. A refresh token Cognito does not know (already revoked, expired, of
// another client) gives ErrInvalidCredentials.
func (c *Client) Revoke(ctx context.Context, refreshToken string) error {
	if refreshToken == "" {
		return ErrInvalidCredentials
	}
	in := &cip.RevokeTokenInput{ClientId: aws.String(c.clientID), Token: aws.String(refreshToken)}
	if c.secret != nil {
		in.ClientSecret = aws.String(string(c.secret))
	}
	if _, err := c.api.RevokeToken(ctx, in); err != nil {
		return translate("revoke", err)
	}
	return nil
}

// secretHash is Cognito's SECRET_HASH: base64(HMAC-SHA256(key: secret, message: username +
// clientID)).
func secretHash(secret []byte, username, clientID string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(username + clientID))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// initiate sends InitiateAuth with flow and params, adding SECRET_HASH for
// username when the app client has a secret, and turns the answer into
// Tokens or one of the package's errors.
func (c *Client) initiate(ctx context.Context, op string, flow types.AuthFlowType, username string, params map[string]string) (*Tokens, error) {
	if c.secret != nil {
		params["SECRET_HASH"] = secretHash(c.secret, username, c.clientID)
	}
	out, err := c.api.InitiateAuth(ctx, &cip.InitiateAuthInput{AuthFlow: flow, ClientId: aws.String(c.clientID), AuthParameters: params})
	if err != nil {
		return nil, translate(op, err)
	}
	if out.ChallengeName != "" {
		return nil, &ChallengeError{
			Name:       string(out.ChallengeName),
			Session:    aws.ToString(out.Session),
			Parameters: out.ChallengeParameters,
		}
	}
	r := out.AuthenticationResult
	if r == nil || aws.ToString(r.IdToken) == "" || aws.ToString(r.AccessToken) == "" {
		return nil, fmt.Errorf("%w: %s: the answer holds neither tokens nor a challenge", ErrUnavailable, op)
	}
	return &Tokens{
		IDToken:      aws.ToString(r.IdToken),
		AccessToken:  aws.ToString(r.AccessToken),
		RefreshToken: aws.ToString(r.RefreshToken),
		ExpiresIn:    r.ExpiresIn,
		TokenType:    aws.ToString(r.TokenType),
	}, nil
}

// translate maps an error of InitiateAuth to the package's errors (see the package doc).
func translate(op string, err error) error {
	switch {
	// The caller gave up (the SDK wraps its context's error): nobody waits for an answer.
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("cognito: %s: %w", op, context.Canceled)

	// The SDK types only the errors InitiateAuth declares; others arrive as a generic
	// smithy.APIError and are matched by code. cognito-local answers InvalidPasswordException
	// for a wrong password (Cognito itself uses it only for passwords that break the pool's
	// policy, which InitiateAuth never checks).
	case awserr.Is[*types.NotAuthorizedException](err),
		awserr.Is[*types.UserNotFoundException](err),
		awserr.Code(err) == "InvalidPasswordException":
		return ErrInvalidCredentials
	case awserr.Is[*types.UserNotConfirmedException](err):
		return ErrUserNotConfirmed
	case awserr.Is[*types.PasswordResetRequiredException](err):
		return ErrPasswordResetRequired
	case awserr.Is[*types.TooManyRequestsException](err),
		awserr.Code(err) == "LimitExceededException",
		awserr.Code(err) == "TooManyFailedAttemptsException",
		awserr.Status(err) == http.StatusTooManyRequests:
		return ErrTooManyRequests

	case errors.Is(err, context.DeadlineExceeded), awserr.Timeout(err):
		return fmt.Errorf("%w (%w): %s: %v", ErrUnavailable, context.DeadlineExceeded, op, err)
	case awserr.Is[*types.InternalErrorException](err),
		awserr.Status(err) >= 500,
		awserr.Is[*smithyhttp.RequestSendError](err),
		awserr.Is[net.Error](err):
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
	}
	return fmt.Errorf("cognito: %s: %v", op, err)
}
