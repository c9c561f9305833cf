package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/cognito"
	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/jwtauth"
	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"
	"github.com/caddy-upload-gateway/upload-gateway/internal/ratelimit"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"

	"github.com/caddy-upload-gateway/upload-gateway/module/metricsapp"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	caddy.RegisterModule(Auth{})
}

// Auth authenticates requests with bearer tokens from AWS Cognito (or
// another OIDC issuer, or the built-in local identity provider), maps the
// user's groups to a role, and serves the login API:
//
//   - `POST <login_path>` `{"email":…,"password":…}` signs in (Cognito
//     InitiateAuth USER_PASSWORD_AUTH, or the local provider) and answers
//     `{"success":true,"data":{"token":…,"accessToken":…,"refreshToken":…,
//     "expiresIn":…,"user":{"id":…,"email":…,"groups":[…],"role":{"role":…}}}}`
//     (with `"roleArn"` in `role` when `expose_role_arn` is set);
//   - `POST <refresh_path>` `{"refreshToken":…,"email":…}` renews the tokens;
//     the local provider rotates the refresh token: the response holds a
//     new one and the one sent stops working;
//   - `POST <revoke_path>` `{"refreshToken":…}` (local provider only) ends
//     the session the refresh token belongs to: it and every refresh token
//     rotated from it stop working;
//   - `GET <jwks_path>` serves the local provider's public keys.
//
// Every other request needs a valid `Authorization: Bearer` token, except
// CORS preflights: OPTIONS requests with `Origin` and
// `Access-Control-Request-Method` headers and no body pass without one.
// Failures get a 401 JSON error with `WWW-Authenticate: Bearer
// error="invalid_token"`, and no detail that would help an attacker; the
// reason is logged.
//
// # Login abuse
//
// Logins are limited per client address (IPv6: per /64), per account and
// client, and per account across all clients, so that an attacker hammering
// a known account from one address exhausts only their own allowance, not
// the user's. Emails longer than 254 bytes are refused before any limiter
// sees them. The local provider's password checks (bcrypt) run at most
// `login_concurrency` at once; excess attempts get a fast 503 with
// `Retry-After`.
//
// The client address is Caddy's `{http.vars.client_ip}`: the connection's
// peer, or, for requests from a proxy listed in the server's
// `trusted_proxies`, the address from `X-Forwarded-For`. Behind a proxy,
// configure `trusted_proxies` (with `trusted_proxies_strict` when the proxy
// appends to the header), or every client shares the proxy's limits; never
// trust ranges clients can send from, or they choose their own address.
//
// These placeholders are set for later handlers (the upload_gateway handler
// uses them for keys and metadata):
//
// Placeholder | Description
// ------------|-------------
// `{http.auth.user.id}` | The user's id (`sub`)
// `{http.auth.user.username}` | The user name
// `{http.auth.user.email}` | The user's email
// `{http.auth.user.email_verified}` | `true` when the token says the email is verified, else `false`
// `{http.auth.user.role}` | `admin`, `uploader`, `viewer` or empty
// `{http.auth.user.groups}` | Comma-separated groups
// `{http.auth.user.token_use}` | `id` or `access`
type Auth struct {
	Identity

	// The Cognito Identity Provider endpoint used for logins. Default:
	// AWS's endpoint for the region.
	CognitoEndpoint string `json:"cognito_endpoint,omitempty"`

	// The app client secret, if the app client has one.
	ClientSecret string `json:"client_secret,omitempty"`

	// The IAM role ARN of each role, returned at login (`roleArn`) when
	// expose_role_arn is set.
	RoleARNs map[string]string `json:"role_arns,omitempty"`

	// Include the role's ARN (`roleArn`) in login and refresh responses.
	// Default false: account ids and role names are not shown to clients.
	ExposeRoleARN bool `json:"expose_role_arn,omitempty"`

	// Path of the login endpoint. Default `/auth/login`; `off` disables it.
	LoginPath string `json:"login_path,omitempty"`

	// Path of the token refresh endpoint. Default `/auth/refresh`; `off`
	// disables it.
	RefreshPath string `json:"refresh_path,omitempty"`

	// Path of the local identity provider's sign-out endpoint, which
	// revokes a refresh token's session. Default `/auth/revoke`; `off`
	// disables it.
	RevokePath string `json:"revoke_path,omitempty"`

	// Path where the local identity provider publishes its keys. Default
	// `/.well-known/jwks.json`; `off` disables it.
	JWKSPath string `json:"jwks_path,omitempty"`

	// Login attempts allowed per minute per client address; IPv6 clients
	// are counted by /64. Default 20.
	LoginPerIP int `json:"login_per_ip,omitempty"`

	// Login attempts allowed per minute for one account from one client
	// address (IPv6: /64). Default 5.
	LoginPerAccount int `json:"login_per_account,omitempty"`

	// Login attempts allowed per minute for one account from all clients
	// together: the bound on guessing one password from many addresses.
	// Attempts refused by the per-client limits do not count, so one
	// client cannot use it up for the others. Default 30.
	LoginPerAccountTotal int `json:"login_per_account_total,omitempty"`

	// How many password checks of the local identity provider (bcrypt,
	// about 0.05–1 s of CPU each) run at once, in all upload_auth handlers
	// of the process with the same setting together. A login that
	// finds them all busy waits up to a second behind at most as many
	// others, or gets 503 `LOGIN_BUSY` with `Retry-After: 1`; it is charged
	// to the client's login_per_ip allowance but not to the account's.
	// Default: the number of CPUs Go uses (GOMAXPROCS).
	LoginConcurrency int `json:"login_concurrency,omitempty"`

	login        *cognito.Client
	ipLimit      *ratelimit.Limiter
	pairLimit    *ratelimit.Limiter // by account and client
	accountLimit *ratelimit.Limiter
	bcrypt       *ratelimit.Gate
	gateKey      string
	metrics      *metrics.Metrics
	cw           *metricsapp.App
	logger       *zap.Logger
	audit        *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Auth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.upload_auth",
		New: func() caddy.Module { return new(Auth) },
	}
}

// Provision sets up the handler without network calls.
func (a *Auth) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.audit = a.logger.Named("audit")
	m, err := metrics.New(ctx.GetMetricsRegistry())
	if err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	a.metrics = m
	if a.cw, err = metricsapp.Sink(ctx); err != nil {
		return err
	}
	if err := a.Identity.provision(ctx); err != nil {
		return err
	}
	if a.LoginPath == "" {
		a.LoginPath = "/auth/login"
	}
	if a.RefreshPath == "" {
		a.RefreshPath = "/auth/refresh"
	}
	if a.JWKSPath == "" {
		a.JWKSPath = "/.well-known/jwks.json"
	}
	if a.RevokePath == "" {
		a.RevokePath = "/auth/revoke"
	}
	if a.LoginPerIP == 0 {
		a.LoginPerIP = 20
	}
	if a.LoginPerAccount == 0 {
		a.LoginPerAccount = 5
	}
	if a.LoginPerAccountTotal == 0 {
		a.LoginPerAccountTotal = 30
	}
	if a.LoginConcurrency == 0 {
		a.LoginConcurrency = runtime.GOMAXPROCS(0)
	}
	if a.LoginPerIP < 0 || a.LoginPerAccount < 0 || a.LoginPerAccountTotal < 0 || a.LoginConcurrency < 0 {
		return fmt.Errorf("login limits must not be negative")
	}
	perMinute := func(n int) *ratelimit.Limiter {
		return ratelimit.New(rate.Limit(float64(n)/60), n, 100_000)
	}
	a.ipLimit = perMinute(a.LoginPerIP)
	a.pairLimit = perMinute(a.LoginPerAccount)
	a.accountLimit = perMinute(a.LoginPerAccountTotal)
	a.gateKey = fmt.Sprintf("login_concurrency/%d", a.LoginConcurrency)
	gate, _, err := loginGates.LoadOrNew(a.gateKey, func() (caddy.Destructor, error) {
		return loginGate{ratelimit.NewGate(a.LoginConcurrency, a.LoginConcurrency, loginWait)}, nil
	})
	if err != nil {
		return fmt.Errorf("setting up the login gate: %v", err)
	}
	a.bcrypt = gate.(loginGate).Gate

	if a.Local == nil && len(a.ClientIDs) > 0 {
		repl := caddy.NewReplacer()
		a.ClientSecret = repl.ReplaceAll(a.ClientSecret, "")
		a.CognitoEndpoint = repl.ReplaceAll(a.CognitoEndpoint, "")
		cfg, err := shared.LoadAWSConfig(ctx, shared.AWSSettings{
			Region: a.Region,
			// InitiateAuth is unauthenticated; an emulator still wants a
			// signature, so give it dummy credentials.
			DummyCredentials: a.CognitoEndpoint != "",
			DefaultRegion:    "us-east-1",
		})
		if err != nil {
			return fmt.Errorf("loading AWS configuration: %v", err)
		}
		client := cognitoidentityprovider.NewFromConfig(cfg, func(o *cognitoidentityprovider.Options) {
			if a.CognitoEndpoint != "" {
				o.BaseEndpoint = aws.String(a.CognitoEndpoint)
			}
		})
		a.login = cognito.New(client, a.ClientIDs[0], a.ClientSecret)
	}
	return nil
}

// Validate checks the configuration.
func (a *Auth) Validate() error {
	if err := a.Identity.validate(); err != nil {
		return err
	}
	for role := range a.RoleARNs {
		if _, err := roles.Parse(role); err != nil {
			return fmt.Errorf("role_arns: %v", err)
		}
	}
	if a.LoginPerIP < 0 || a.LoginPerAccount < 0 || a.LoginPerAccountTotal < 0 || a.LoginConcurrency < 0 {
		return fmt.Errorf("login limits must not be negative")
	}
	return nil
}

// Cleanup releases the handler's share of its login gate.
func (a *Auth) Cleanup() error {
	if a.gateKey != "" {
		_, err := loginGates.Delete(a.gateKey)
		return err
	}
	return nil
}

// loginGates holds the password check gates of all upload_auth handlers,
// one per login_concurrency value, so that the bound holds for the whole
// process (password checks compete for the same CPUs) and across config
// reloads, when old and new handlers run side by side.
var loginGates = caddy.NewUsagePool()

// loginGate is a Gate in the usage pool.
type loginGate struct{ *ratelimit.Gate }

// Destruct implements caddy.Destructor; a gate holds nothing to release.
func (loginGate) Destruct() error { return nil }

// loginWait is how long a login waits for a free password check slot.
const loginWait = time.Second

// maxEmailLength is the longest email address accepted at login (RFC 5321
// limits a forward path to 256 octets including the angle brackets).
const maxEmailLength = 254

// ServeHTTP serves the login API or authenticates the request.
func (a *Auth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	switch {
	case r.Method == http.MethodPost && a.LoginPath != "off" && r.URL.Path == a.LoginPath:
		return a.serveLogin(w, r)
	case r.Method == http.MethodPost && a.RefreshPath != "off" && r.URL.Path == a.RefreshPath:
		return a.serveRefresh(w, r)
	case r.Method == http.MethodPost && a.local != nil && a.RevokePath != "off" && r.URL.Path == a.RevokePath:
		return a.serveRevoke(w, r)
	case r.Method == http.MethodGet && a.local != nil && a.JWKSPath != "off" && r.URL.Path == a.JWKSPath:
		return a.serveJWKS(w)
	case isCORSPreflight(r):
		return next.ServeHTTP(w, r) // CORS preflights carry no credentials
	}
	p, err := a.authenticate(r)
	if err != nil {
		reason := logRejection(a.logger, r, err)
		status, result := http.StatusUnauthorized, "denied"
		if errors.Is(err, jwtauth.ErrKeysUnavailable) {
			status, result = http.StatusBadGateway, "failed"
		} else {
			a.metrics.AuthFailure(reason)
			a.cw.AuthFailed(reason)
		}
		shared.Audit(a.audit, r, shared.AuditEvent{Action: "authenticate", Result: result, Status: status, Reason: reason})
		return a.unauthorized(w, err)
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	setUserPlaceholders(repl, p)
	return next.ServeHTTP(w, r)
}

func (a *Auth) unauthorized(w http.ResponseWriter, err error) error {
	if errors.Is(err, jwtauth.ErrKeysUnavailable) {
		return envelope.WriteError(w, http.StatusBadGateway, "IDENTITY_PROVIDER_UNAVAILABLE", "the identity provider's keys could not be loaded")
	}
	if errors.Is(err, errNoToken) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="upload-gateway"`)
		return envelope.WriteError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "authentication required")
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="upload-gateway", error="invalid_token"`)
	return envelope.WriteError(w, http.StatusUnauthorized, "INVALID_TOKEN", "the token is invalid or expired")
}

// loginRequest is the body of login and refresh requests.
type loginRequest struct {
	Email        string `json:"email"`
	Password     string `json:"password"`
	RefreshToken string `json:"refreshToken"`
}

// loginUser describes the signed-in user.
type loginUser struct {
	ID     string    `json:"id"`
	Email  string    `json:"email"`
	Groups []string  `json:"groups"`
	Role   loginRole `json:"role"`
}

type loginRole struct {
	Role    string `json:"role"`
	RoleARN string `json:"roleArn,omitempty"`
}

type loginResponse struct {
	Token        string    `json:"token"`
	AccessToken  string    `json:"accessToken"`
	RefreshToken string    `json:"refreshToken,omitempty"`
	ExpiresIn    int       `json:"expiresIn"`
	ExpiresAt    string    `json:"expiresAt"`
	TokenType    string    `json:"tokenType"`
	User         loginUser `json:"user"`
}

func (a *Auth) readLogin(w http.ResponseWriter, r *http.Request) (*loginRequest, bool) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		_ = envelope.WriteError(w, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "send application/json")
		return nil, false
	}
	var req loginRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&req); err != nil {
		_ = envelope.WriteError(w, http.StatusBadRequest, "BAD_REQUEST", "the body is not valid JSON")
		return nil, false
	}
	req.Email = strings.ToLower(strings.TrimSpace(req.Email))
	if len(req.Email) > maxEmailLength {
		_ = envelope.WriteError(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("the email is longer than %d bytes", maxEmailLength))
		return nil, false
	}
	return &req, true
}

// limited applies a login rate limit and answers 429 when it is hit: with
// account "", the client's; otherwise the account's from this client, then
// the account's from all clients. A refused attempt takes nothing from the
// later limits, so an attacker's attempts from one client use up only that
// client's allowances.
func (a *Auth) limited(w http.ResponseWriter, r *http.Request, account string) bool {
	client := ratelimit.ClientKey(shared.ClientIP(r))
	var ok bool
	var retry time.Duration
	if account == "" {
		ok, retry = a.ipLimit.Allow(client)
	} else {
		ok, retry = a.pairLimit.Allow(account + "\x00" + client)
		if ok {
			ok, retry = a.accountLimit.Allow(account)
		}
	}
	if ok {
		return false
	}
	shared.Audit(a.audit, r, shared.AuditEvent{Action: "login", Result: "rate_limited", Account: account, Status: http.StatusTooManyRequests})
	w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds()+1)))
	_ = envelope.WriteError(w, http.StatusTooManyRequests, "TOO_MANY_ATTEMPTS", "too many login attempts; try again later")
	return true
}

func (a *Auth) serveLogin(w http.ResponseWriter, r *http.Request) error {
	req, ok := a.readLogin(w, r)
	if !ok {
		return nil
	}
	if a.limited(w, r, "") {
		return nil
	}
	if req.Email == "" || req.Password == "" {
		return envelope.WriteError(w, http.StatusBadRequest, "BAD_REQUEST", "email and password are required")
	}
	if a.local != nil {
		// Take a password check slot before charging the account, so that
		// an attempt refused as busy costs the user only their address's
		// allowance.
		release, err := a.bcrypt.Enter(r.Context())
		if err != nil {
			return a.loginFailed(w, r, req.Email, err)
		}
		defer release()
	}
	if a.limited(w, r, req.Email) {
		return nil
	}
	var tokens *loginResponse
	var err error
	if a.local != nil {
		tokens, err = a.localLogin(r, req)
	} else {
		tokens, err = a.cognitoLogin(r, req)
	}
	if err != nil {
		return a.loginFailed(w, r, req.Email, err)
	}
	shared.Audit(a.audit, r, shared.AuditEvent{Action: "login", Result: "ok", Account: req.Email, Status: http.StatusOK})
	return envelope.WriteData(w, http.StatusOK, tokens)
}

// readRefreshToken reads a request that carries a refresh token, within the
// per-client limit; when ok is false the answer has been written.
func (a *Auth) readRefreshToken(w http.ResponseWriter, r *http.Request) (req *loginRequest, ok bool) {
	if req, ok = a.readLogin(w, r); !ok || a.limited(w, r, "") {
		return nil, false
	}
	if req.RefreshToken == "" {
		_ = envelope.WriteError(w, http.StatusBadRequest, "BAD_REQUEST", "refreshToken is required")
		return nil, false
	}
	return req, true
}

func (a *Auth) serveRefresh(w http.ResponseWriter, r *http.Request) error {
	req, ok := a.readRefreshToken(w, r)
	if !ok {
		return nil
	}
	var tokens *loginResponse
	var err error
	if a.local != nil {
		var t *localidp.Tokens
		if _, err = a.local.Keys(r.Context()); err != nil {
			return a.loginFailed(w, r, req.Email, err)
		}
		t, err = a.local.issuer.Refresh(req.RefreshToken, a.local.users)
		if err == nil {
			tokens, err = a.describeToken(t.IDToken, t.AccessToken, t.RefreshToken, t.ExpiresIn)
		}
	} else {
		var t *cognito.Tokens
		t, err = a.login.Refresh(r.Context(), req.RefreshToken, req.Email)
		if err == nil {
			tokens, err = a.describeToken(t.IDToken, t.AccessToken, req.RefreshToken, int(t.ExpiresIn))
		}
	}
	if err != nil {
		return a.loginFailed(w, r, req.Email, err)
	}
	return envelope.WriteData(w, http.StatusOK, tokens)
}

// serveRevoke ends the session of a local provider's refresh token.
func (a *Auth) serveRevoke(w http.ResponseWriter, r *http.Request) error {
	req, ok := a.readRefreshToken(w, r)
	if !ok {
		return nil
	}
	if _, err := a.local.Keys(r.Context()); err != nil {
		return a.loginFailed(w, r, "", err)
	}
	if err := a.local.issuer.Revoke(req.RefreshToken); err != nil {
		return a.loginFailed(w, r, "", err)
	}
	shared.Audit(a.audit, r, shared.AuditEvent{Action: "revoke", Result: "ok", Status: http.StatusOK})
	return envelope.WriteData(w, http.StatusOK, map[string]bool{"revoked": true})
}

func (a *Auth) localLogin(r *http.Request, req *loginRequest) (*loginResponse, error) {
	u, err := a.local.users.Authenticate(req.Email, req.Password)
	if err != nil {
		return nil, err
	}
	// Sign with the current key, even if another instance rotated it.
	if _, err := a.local.Keys(r.Context()); err != nil {
		return nil, err
	}
	t, err := a.local.issuer.Issue(u)
	if err != nil {
		return nil, err
	}
	return a.describeToken(t.IDToken, t.AccessToken, t.RefreshToken, t.ExpiresIn)
}

func (a *Auth) cognitoLogin(r *http.Request, req *loginRequest) (*loginResponse, error) {
	if a.login == nil {
		return nil, errors.New("login is not configured")
	}
	t, err := a.login.Login(r.Context(), req.Email, req.Password)
	if err != nil {
		return nil, err
	}
	return a.describeToken(t.IDToken, t.AccessToken, t.RefreshToken, int(t.ExpiresIn))
}

// describeToken builds the login response, reading the user from the
// freshly issued id token through the same verifier requests use.
func (a *Auth) describeToken(idToken, accessToken, refreshToken string, expiresIn int) (*loginResponse, error) {
	claims, err := a.verifier.VerifyTokenUse(a.ctx, idToken, jwtauth.TokenUseID)
	if err != nil {
		return nil, fmt.Errorf("verifying the issued id token: %w", err)
	}
	role, groups := a.mapper.Resolve(claims.All)
	if groups == nil {
		groups = []string{}
	}
	token := idToken
	if a.TokenUse == "access" {
		token = accessToken
	}
	return &loginResponse{
		Token:        token,
		AccessToken:  accessToken,
		RefreshToken: refreshToken,
		ExpiresIn:    expiresIn,
		ExpiresAt:    time.Now().Add(time.Duration(expiresIn) * time.Second).UTC().Format(time.RFC3339),
		TokenType:    "Bearer",
		User: loginUser{
			ID:     claims.Subject,
			Email:  claims.Email,
			Groups: groups,
			Role:   a.describeRole(role),
		},
	}, nil
}

// describeRole returns the role as shown to the user: the ARN only when
// the configuration asks for it.
func (a *Auth) describeRole(role roles.Role) loginRole {
	lr := loginRole{Role: string(role)}
	if a.ExposeRoleARN {
		lr.RoleARN = a.RoleARNs[string(role)]
	}
	return lr
}

// loginFailed maps login errors to responses; this is the one place where
// login errors become statuses.
func (a *Auth) loginFailed(w http.ResponseWriter, r *http.Request, account string, err error) error {
	var challenge *cognito.ChallengeError
	status, code, msg := http.StatusBadGateway, "IDENTITY_PROVIDER_ERROR", "the identity provider failed"
	switch {
	case errors.Is(err, cognito.ErrInvalidCredentials), errors.Is(err, localidp.ErrInvalidCredentials):
		status, code, msg = http.StatusUnauthorized, "INVALID_CREDENTIALS", "wrong email or password"
	case errors.Is(err, localidp.ErrInvalidRefreshToken):
		status, code, msg = http.StatusUnauthorized, "INVALID_TOKEN", "the refresh token is invalid or expired"
	case errors.As(err, &challenge):
		status, code, msg = http.StatusForbidden, challenge.Name, "the account must complete the "+challenge.Name+" challenge before signing in here"
	case errors.Is(err, cognito.ErrUserNotConfirmed):
		status, code, msg = http.StatusForbidden, "USER_NOT_CONFIRMED", "the account is not confirmed"
	case errors.Is(err, cognito.ErrPasswordResetRequired):
		status, code, msg = http.StatusForbidden, "PASSWORD_RESET_REQUIRED", "the password must be reset"
	case errors.Is(err, cognito.ErrTooManyRequests):
		status, code, msg = http.StatusTooManyRequests, "TOO_MANY_ATTEMPTS", "too many attempts; try again later"
	case errors.Is(err, cognito.ErrUnavailable):
		status, code, msg = http.StatusBadGateway, "IDENTITY_PROVIDER_UNAVAILABLE", "the identity provider is unavailable"
	case errors.Is(err, ratelimit.ErrBusy):
		// Expected under a flood; not worth an error line per attempt.
		w.Header().Set("Retry-After", "1")
		shared.Audit(a.audit, r, shared.AuditEvent{Action: "login", Result: "busy", Account: account, Status: http.StatusServiceUnavailable, Reason: "LOGIN_BUSY"})
		return envelope.WriteError(w, http.StatusServiceUnavailable, "LOGIN_BUSY", "too many sign-ins at once; try again shortly")
	case errors.Is(err, context.Canceled):
		status, code, msg = shared.StatusClientClosedRequest, "CLIENT_CLOSED_REQUEST", "the client closed the request"
	}
	if status >= 500 {
		a.logger.Error("login failed", zap.String("code", code), zap.Error(err))
	}
	shared.Audit(a.audit, r, shared.AuditEvent{Action: "login", Result: "denied", Account: account, Status: status, Reason: code})
	return envelope.WriteError(w, status, code, msg)
}

func (a *Auth) serveJWKS(w http.ResponseWriter) error {
	if _, err := a.local.Keys(a.ctx); err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	doc, err := a.local.keys.JWKS()
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, err = w.Write(doc)
	return err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Auth)(nil)
	_ caddy.Validator             = (*Auth)(nil)
	_ caddy.CleanerUpper          = (*Auth)(nil)
	_ caddyhttp.MiddlewareHandler = (*Auth)(nil)
)
