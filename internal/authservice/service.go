package authservice

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-upload-gateway/upload-gateway/internal/cognito"
	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/jwtauth"
	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"
	"github.com/caddy-upload-gateway/upload-gateway/internal/ratelimit"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
)

// Local is the built-in identity provider; usually a *localidp.Provider.
type Local interface {
	Login(ctx context.Context, email, password string) (*localidp.Tokens, error)
	Refresh(ctx context.Context, refreshToken string) (*localidp.Tokens, error)
	Revoke(ctx context.Context, refreshToken string) error
	JWKS(ctx context.Context) ([]byte, error)
}

// Cognito signs users in with a Cognito app client; usually a
// *cognito.Client.
type Cognito interface {
	Login(ctx context.Context, email, password string) (*cognito.Tokens, error)
	Refresh(ctx context.Context, refreshToken, username string) (*cognito.Tokens, error)
}

// CognitoRevoker is a [Cognito] that can also revoke a refresh token, which
// sign-out then does; *cognito.Client is one. It returns an error wrapping
// cognito.ErrInvalidCredentials for a token Cognito does not know.
type CognitoRevoker interface {
	Revoke(ctx context.Context, refreshToken string) error
}

// Verifier checks an issued id token the way requests are checked;
// usually a *jwtauth.Verifier.
type Verifier interface {
	VerifyTokenUse(ctx context.Context, token, use string) (*jwtauth.Claims, error)
}

// Limiter allows or refuses one attempt for key, telling when to retry;
// usually a *ratelimit.Limiter.
type Limiter interface {
	Allow(key string) (ok bool, retryAfter time.Duration)
}

// Gate bounds concurrent password checks; usually a *ratelimit.Gate. Enter
// fails with an error wrapping ratelimit.ErrBusy when no slot is free in
// time.
type Gate interface {
	Enter(ctx context.Context) (release func(), err error)
}

// Actions of an [Outcome]: the route a request took.
const (
	ActionLogin   = "login"
	ActionRefresh = "refresh"
	ActionRevoke  = "revoke"
	ActionLogout  = "logout"
	ActionSession = "session"
	ActionJWKS    = "jwks"
)

// Outcome is how one request ended, for audit, metrics and logs.
type Outcome struct {
	Action  string // ActionLogin, …
	Result  string // ok, rejected, denied, rate_limited, busy or failed
	Account string // the email the request named, if any
	Status  int
	Code    string // the error code sent; "" on success
	// Duration is how long the request took to answer.
	Duration time.Duration
	// Err is the error behind a failure the operator should look at (the
	// identity provider or the key store failed); nil otherwise.
	Err error
}

// Metrics is o as the gateway records every request: route "auth",
// endpoint "auth_<action>", and the action (which makes an audit line) for
// all but JWKS and session reads.
func (o Outcome) Metrics() metrics.Outcome {
	out := metrics.Outcome{Route: "auth", Endpoint: "auth_" + o.Action, Result: o.Result, Status: o.Status,
		Duration: o.Duration, Account: o.Account, Reason: o.Code}
	if o.Action != ActionJWKS && o.Action != ActionSession {
		out.Action = o.Action
	}
	return out
}

// Config configures a [Service]. Exactly one of Local and Cognito is set.
type Config struct {
	Local   Local
	Cognito Cognito

	// Verifier reads the user from the issued id token; Roles maps the
	// user's groups to a role. Required.
	Verifier Verifier
	Roles    roles.Mapper

	// AccessToken makes "token" in responses the access token instead of
	// the id token (for deployments that accept access tokens).
	AccessToken bool
	// RoleARNs, when set, adds each role's ARN to responses ("roleArn").
	RoleARNs map[string]string

	// Paths of the routes; "" or "off" disables a route. Revoke and JWKS
	// exist only with Local, Session only with Authenticate. With Local, a
	// LogoutPath that is RevokePath's too stays the revoke route (a
	// configuration from before sign-out existed, `revoke_path
	// /auth/logout`, keeps revoking there).
	LoginPath, RefreshPath, RevokePath, LogoutPath, SessionPath, JWKSPath string

	// Cookies, when set, gives browsers a session: sign-in and refresh set
	// the session and refresh cookies, refresh and sign-out with an empty
	// body read the refresh cookie, sign-out clears both. Nil: no cookies.
	Cookies *Cookies
	// CheckOrigin refuses a request that rides on the cookies from another
	// site (package csrf), with an error wrapping csrf.ErrOrigin. It is
	// called for refresh and sign-out requests that carry the cookies and
	// no refresh token in the body. Nil: no check.
	CheckOrigin func(*http.Request) error
	// Authenticate finds the signed-in user of a request (by bearer token
	// or cookie) for the session route; its errors are those of
	// [Authenticate].
	Authenticate func(*http.Request) (*Principal, error)

	// Login attempt limits: per client address (key: ClientKey), per
	// account from one client, per account from all clients, and per
	// account across instances (shared, costlier: asked only when the
	// others allow). Nil: none.
	PerClient, PerAccountClient, PerAccount, PerAccountGlobal Limiter
	// Gate bounds the local provider's password checks. Nil: no bound.
	Gate Gate
	// ClientKey returns the client's key for the limiters. Default: the
	// request's remote address without the port.
	ClientKey func(*http.Request) string

	// Report, when set, is called once per request with its outcome.
	Report func(*http.Request, Outcome)
}

// Service serves the login API. It is safe for concurrent use.
type Service struct {
	cfg Config
	now func() time.Time
}

// New checks cfg and returns the service.
func New(cfg Config) (*Service, error) {
	switch {
	case (cfg.Local == nil) == (cfg.Cognito == nil):
		return nil, errors.New("authservice: set exactly one of the local provider and Cognito")
	case cfg.Verifier == nil:
		return nil, errors.New("authservice: a verifier is required")
	}
	for _, p := range []*string{&cfg.LoginPath, &cfg.RefreshPath, &cfg.RevokePath, &cfg.LogoutPath, &cfg.SessionPath, &cfg.JWKSPath} {
		if *p == "off" {
			*p = ""
		}
	}
	if cfg.Local == nil {
		cfg.RevokePath, cfg.JWKSPath = "", ""
	} else if cfg.LogoutPath == cfg.RevokePath {
		cfg.LogoutPath = ""
	}
	if cfg.Authenticate == nil {
		cfg.SessionPath = ""
	}
	if cfg.ClientKey == nil {
		cfg.ClientKey = remoteHost
	}
	return &Service{cfg: cfg, now: time.Now}, nil
}

// route returns the action of r, or "" when r is not for the service.
func (s *Service) route(r *http.Request) string {
	p := r.URL.Path
	switch {
	case p == "":
	case r.Method == http.MethodPost && p == s.cfg.LoginPath:
		return ActionLogin
	case r.Method == http.MethodPost && p == s.cfg.RefreshPath:
		return ActionRefresh
	case r.Method == http.MethodPost && p == s.cfg.RevokePath:
		return ActionRevoke
	case r.Method == http.MethodPost && p == s.cfg.LogoutPath:
		return ActionLogout
	case r.Method == http.MethodGet && p == s.cfg.SessionPath:
		return ActionSession
	case r.Method == http.MethodGet && p == s.cfg.JWKSPath:
		return ActionJWKS
	}
	return ""
}

// Handles reports whether r is a request for the service: one of its
// routes with the route's method.
func (s *Service) Handles(r *http.Request) bool { return s.route(r) != "" }

// ServeHTTP answers a request for one of the routes, and 404 for others.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	o := Outcome{Action: s.route(r)}
	var data any
	var err error
	switch o.Action {
	case "":
		_ = envelope.WriteError(w, http.StatusNotFound, "NOT_FOUND", "no such route")
		return
	case ActionJWKS:
		var doc []byte
		if doc, err = s.cfg.Local.JWKS(r.Context()); err == nil {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "public, max-age=300")
			o.Status = http.StatusOK
			_, _ = w.Write(doc)
		} else {
			err = fmt.Errorf("%w: %w", errKeys, err)
		}
	case ActionSession:
		if o.Status = s.session(w, r); o.Status >= 500 {
			o.Result, o.Code = "failed", "IDENTITY_PROVIDER_UNAVAILABLE"
		} else if o.Status >= 400 {
			o.Result, o.Code = "denied", "UNAUTHENTICATED"
		}
	default:
		var req *request
		if req, err = s.readRequest(r, o.Action); err == nil {
			o.Account = req.Email
			data, err = s.serve(w, r, o.Action, req)
		}
		if err == nil {
			o.Status = http.StatusOK
			_ = envelope.WriteData(w, o.Status, data)
		}
	}
	if err != nil {
		s.fail(w, &o, err)
	}
	if o.Status < 400 {
		o.Result = "ok"
	}
	if s.cfg.Report != nil {
		o.Duration = time.Since(start)
		s.cfg.Report(r, o)
	}
}

// serve runs a login, refresh, revoke or sign-out request after the
// per-client limit, and returns the data of its 200 response. With
// cookies, it sets them.
func (s *Service) serve(w http.ResponseWriter, r *http.Request, action string, req *request) (any, error) {
	ctx := r.Context()
	client := s.cfg.ClientKey(r)
	if err := allow(s.cfg.PerClient, client); err != nil {
		return nil, err
	}
	switch action {
	case ActionLogin:
		resp, err := s.login(ctx, client, req)
		if err != nil {
			return nil, err
		}
		// A browser's login (browsers send Origin with every POST) keeps
		// the tokens in the cookies; clients without Origin (curl, apps)
		// get them.
		return s.sessionStarted(w, resp, r.Header.Get("Origin") != ""), nil
	case ActionRefresh:
		return s.refresh(w, r, req)
	case ActionLogout:
		return s.logout(w, r, req)
	default: // ActionRevoke
		if req.RefreshToken == "" {
			return nil, badRequest("refreshToken is required")
		}
		if err := s.cfg.Local.Revoke(ctx, req.RefreshToken); err != nil {
			return nil, err
		}
		return map[string]bool{"revoked": true}, nil
	}
}

func (s *Service) login(ctx context.Context, client string, req *request) (*Response, error) {
	if req.Email == "" || req.Password == "" {
		return nil, badRequest("email and password are required")
	}
	if s.cfg.Local != nil && s.cfg.Gate != nil {
		// Take a password check slot before charging the account, so that
		// an attempt refused as busy costs the user only their address's
		// allowance.
		release, err := s.cfg.Gate.Enter(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	if err := allow(s.cfg.PerAccountClient, req.Email+"\x00"+client); err != nil {
		return nil, err
	}
	if err := allow(s.cfg.PerAccount, req.Email); err != nil {
		return nil, err
	}
	if err := allow(s.cfg.PerAccountGlobal, req.Email); err != nil {
		return nil, err
	}
	return s.issue(ctx, false, req)
}

// issue asks the provider for tokens, by password or, with refresh, for
// req.RefreshToken, and describes them.
func (s *Service) issue(ctx context.Context, refresh bool, req *request) (*Response, error) {
	var t *localidp.Tokens
	var err error
	switch {
	case s.cfg.Local != nil && refresh:
		t, err = s.cfg.Local.Refresh(ctx, req.RefreshToken)
	case s.cfg.Local != nil:
		t, err = s.cfg.Local.Login(ctx, req.Email, req.Password)
	default:
		var c *cognito.Tokens
		if refresh {
			c, err = s.cfg.Cognito.Refresh(ctx, req.RefreshToken, cmp.Or(req.username, req.Email))
		} else {
			c, err = s.cfg.Cognito.Login(ctx, req.Email, req.Password)
		}
		if err == nil {
			t = &localidp.Tokens{IDToken: c.IDToken, AccessToken: c.AccessToken, RefreshToken: c.RefreshToken, ExpiresIn: int(c.ExpiresIn)}
			if refresh { // Cognito keeps the refresh token
				t.RefreshToken = req.RefreshToken
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return s.describe(ctx, t)
}

// allow takes one attempt from l's allowance for key.
func allow(l Limiter, key string) error {
	if l == nil {
		return nil
	}
	if ok, retry := l.Allow(key); !ok {
		return &limitedError{retryAfter: retry}
	}
	return nil
}

// maxEmailLength is the longest email address accepted (RFC 5321 limits a
// forward path to 256 octets including the angle brackets).
const maxEmailLength = 254

// request is the body of login, refresh, revoke and sign-out requests.
type request struct {
	Email        string `json:"email"`
	Password     string `json:"password"`
	RefreshToken string `json:"refreshToken"`

	// username is the user name the refresh cookie holds (Cognito's, for
	// a refresh with an app client secret).
	username string
}

// readRequest reads the JSON body of a request for action. With cookies, a
// refresh or sign-out request may have an empty body instead (the refresh
// token is in the cookie).
func (s *Service) readRequest(r *http.Request, action string) (*request, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		if (action == ActionLogout || (action == ActionRefresh && s.cfg.Cookies != nil)) && bodyIsEmpty(r) {
			return &request{}, nil
		}
		return nil, errNotJSON
	}
	var req request
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&req); err != nil {
		return nil, badRequest("the body is not valid JSON")
	}
	req.Email = strings.ToLower(strings.TrimSpace(req.Email))
	if len(req.Email) > maxEmailLength {
		return nil, badRequest(fmt.Sprintf("the email is longer than %d bytes", maxEmailLength))
	}
	return &req, nil
}

// User describes the signed-in user.
type User struct {
	ID     string   `json:"id"`
	Email  string   `json:"email"`
	Groups []string `json:"groups"`
	Role   Role     `json:"role"`
}

// Role is the user's role, with its ARN when the configuration shows it.
type Role struct {
	Role    string `json:"role"`
	RoleARN string `json:"roleArn,omitempty"`
}

// Response is the data of a sign-in or refresh response.
type Response struct {
	Token        string `json:"token"`
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken,omitempty"`
	ExpiresIn    int    `json:"expiresIn"`
	ExpiresAt    string `json:"expiresAt"`
	TokenType    string `json:"tokenType"`
	User         User   `json:"user"`

	// username is the user's name at the identity provider, for the
	// refresh cookie.
	username string
}

// describe builds the response, reading the user from the freshly issued
// id token through the verifier requests go through.
func (s *Service) describe(ctx context.Context, t *localidp.Tokens) (*Response, error) {
	claims, err := s.cfg.Verifier.VerifyTokenUse(ctx, t.IDToken, jwtauth.TokenUseID)
	if err != nil {
		return nil, fmt.Errorf("verifying the issued id token: %w", err)
	}
	role, groups := s.cfg.Roles.Resolve(claims.All)
	if groups == nil {
		groups = []string{}
	}
	token := t.IDToken
	if s.cfg.AccessToken {
		token = t.AccessToken
	}
	now := s.now()
	expiresIn := t.ExpiresIn
	if expiresIn <= 0 && !claims.ExpiresAt.IsZero() {
		// The provider did not say (cognito-local never does): the id
		// token's exp tells.
		expiresIn = max(0, int(claims.ExpiresAt.Sub(now)/time.Second))
	}
	return &Response{
		Token:        token,
		AccessToken:  t.AccessToken,
		RefreshToken: t.RefreshToken,
		ExpiresIn:    expiresIn,
		ExpiresAt:    now.Add(time.Duration(expiresIn) * time.Second).UTC().Format(time.RFC3339),
		TokenType:    "Bearer",
		username:     claims.Username,
		User: User{
			ID:     claims.Subject,
			Email:  claims.Email,
			Groups: groups,
			Role:   Role{Role: string(role), RoleARN: s.cfg.RoleARNs[string(role)]},
		},
	}, nil
}

// remoteHost returns the address of r's peer without the port.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return ratelimit.ClientKey(host)
}
