package identity

import (
	"cmp"
	"fmt"
	"net/http"
	"runtime"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/authservice"
	"github.com/caddy-upload-gateway/upload-gateway/internal/cognito"
	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
	"github.com/caddy-upload-gateway/upload-gateway/internal/ratelimit"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
	"github.com/caddy-upload-gateway/upload-gateway/internal/storelimit"

	"github.com/caddy-upload-gateway/upload-gateway/module/metricsapp"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	caddy.RegisterModule(Auth{})
}

// Auth authenticates requests with bearer tokens from AWS Cognito (or
// another OIDC issuer, or the built-in local identity provider), maps the
// user's groups to a role, and serves the login API of internal/authservice
// (whose package doc gives the bodies and answers): `POST <login_path>`
// signs in, `POST <refresh_path>` renews the tokens, `POST <revoke_path>`
// (local provider only) ends a session, `POST <logout_path>` signs out,
// `GET <session_path>` answers who is signed in, and `GET <jwks_path>`
// serves the local provider's public keys.
//
// With `session_cookie`, a page on the gateway's origin (Uppy in Companion
// mode, plain `fetch`) is authenticated by cookies without handling tokens.
//
// Every other request needs a valid token (in the `Authorization: Bearer`
// header, or in the cookie named by `token_cookie` or the query parameter
// named by `token_query` when those are set and the header is absent), except
// CORS preflights: OPTIONS requests with `Origin` and
// `Access-Control-Request-Method` headers and no body pass without one.
// Failures get a 401 JSON error with `WWW-Authenticate: Bearer
// error="invalid_token"` and no detail; the reason is logged.
//
// # Login abuse
//
// Logins are limited per client address, per account and client, and per
// account across all clients (the login_* fields), so that an attacker
// hammering a known account from one address exhausts only their own
// allowance, not the user's. Emails longer than 254 bytes are refused
// before any limiter sees them.
//
// The client address is Caddy's `{http.vars.client_ip}`: behind a proxy,
// set the server's `trusted_proxies`, or every client shares its limits.
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

	// Path of the sign-out endpoint, which revokes a refresh token (local
	// provider, or Cognito RevokeToken) and clears the session cookies. Default `/auth/logout`;
	// `off` disables it. If it is revoke_path's too (local provider), the
	// path keeps revoking as before, which session_cookie refuses.
	LogoutPath string `json:"logout_path,omitempty"`

	// Path of the endpoint that answers who is signed in (`GET`). Default
	// `/auth/session`; `off` disables it.
	SessionPath string `json:"session_path,omitempty"`

	// The name of the session cookie that sign-in and refresh set for
	// browsers (the Caddyfile's `session_cookie` without a name sets
	// `ugw_session`), and that authenticates requests like token_cookie.
	// The refresh cookie is named `<name>_refresh` (a `__Host-` name's
	// refresh cookie is `__Secure-…_refresh`). Both are HttpOnly, Secure and
	// SameSite=Strict, so the site must be served over HTTPS. The session
	// cookie's Max-Age is the token's lifetime; the refresh cookie's is the
	// local provider's refresh_ttl, or 30 days (Cognito's default refresh
	// token validity) with Cognito. See allowed_origins for the CSRF check
	// of requests authenticated by it. Default: none, no cookies are set.
	SessionCookie string `json:"session_cookie,omitempty"`

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

	// Login attempts allowed per minute for one account across every
	// instance that shares Caddy's storage (the global `storage` option:
	// `file_system` on a shared volume, or any storage module), counted
	// there under `upload_gateway/login_per_account/`. login_per_account
	// and login_per_account_total are per instance, so N instances behind
	// a load balancer allow N times as much; this limit does not grow with
	// N. Each counted attempt takes a lock, a read and a write in the
	// storage. If the storage fails, the attempt is allowed and the error
	// logged. Default 0: off.
	LoginPerAccountGlobal int `json:"login_per_account_global,omitempty"`

	// How many password checks of the local identity provider (bcrypt,
	// about 0.05–1 s of CPU each) run at once, in all upload_auth handlers
	// of the process with the same setting together. A login that
	// finds them all busy waits up to a second behind at most as many
	// others, or gets 503 `LOGIN_BUSY` with `Retry-After: 1`; it is charged
	// to the client's login_per_ip allowance but not to the account's.
	// Default: the number of CPUs Go uses (GOMAXPROCS).
	LoginConcurrency int `json:"login_concurrency,omitempty"`

	service *authservice.Service
	gate    *ratelimit.Gate // local provider only
	gateKey string
	rec     *metricsapp.Recorder
	logger  *zap.Logger
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
	var err error
	if a.rec, err = metricsapp.NewRecorder(ctx, a.logger); err != nil {
		return err
	}
	if err := a.Identity.provision(ctx); err != nil {
		return err
	}
	a.LoginPath = cmp.Or(a.LoginPath, "/auth/login")
	a.RefreshPath = cmp.Or(a.RefreshPath, "/auth/refresh")
	a.RevokePath = cmp.Or(a.RevokePath, "/auth/revoke")
	a.LogoutPath = cmp.Or(a.LogoutPath, "/auth/logout")
	a.SessionPath = cmp.Or(a.SessionPath, "/auth/session")
	a.JWKSPath = cmp.Or(a.JWKSPath, "/.well-known/jwks.json")
	a.LoginPerIP = cmp.Or(a.LoginPerIP, 20)
	a.LoginPerAccount = cmp.Or(a.LoginPerAccount, 5)
	a.LoginPerAccountTotal = cmp.Or(a.LoginPerAccountTotal, 30)
	a.LoginConcurrency = cmp.Or(a.LoginConcurrency, runtime.GOMAXPROCS(0))
	if a.LoginPerIP < 0 || a.LoginPerAccount < 0 || a.LoginPerAccountTotal < 0 || a.LoginConcurrency < 0 || a.LoginPerAccountGlobal < 0 {
		return fmt.Errorf("login limits must not be negative")
	}
	perMinute := func(n int) *ratelimit.Limiter {
		return ratelimit.New(rate.Limit(float64(n)/60), n, 100_000)
	}
	cfg := authservice.Config{
		Verifier:         a.verifier,
		Roles:            a.checker.Roles,
		AccessToken:      a.TokenUse == "access",
		LoginPath:        a.LoginPath,
		RefreshPath:      a.RefreshPath,
		RevokePath:       a.RevokePath,
		LogoutPath:       a.LogoutPath,
		SessionPath:      a.SessionPath,
		Authenticate:     a.authenticate,
		CheckOrigin:      a.checker.Origins.Check,
		JWKSPath:         a.JWKSPath,
		PerClient:        perMinute(a.LoginPerIP),
		PerAccountClient: perMinute(a.LoginPerAccount),
		PerAccount:       perMinute(a.LoginPerAccountTotal),
		ClientKey:        func(r *http.Request) string { return ratelimit.ClientKey(shared.ClientIP(r)) },
		Report:           a.report,
	}
	if a.LoginPerAccountGlobal > 0 {
		cfg.PerAccountGlobal = &storelimit.Limiter{
			Store:   ctx.Storage(),
			Prefix:  "upload_gateway/login_per_account",
			Limit:   a.LoginPerAccountGlobal,
			Window:  time.Minute,
			OnError: func(err error) { a.logger.Warn("global login limit not applied", zap.Error(err)) },
		}
	}
	if a.ExposeRoleARN {
		cfg.RoleARNs = a.RoleARNs
	}
	if a.SessionCookie != "" {
		cfg.Cookies = &authservice.Cookies{Name: a.SessionCookie, RefreshMaxAge: authservice.CognitoRefreshMaxAge}
		if a.Local != nil {
			cfg.Cookies.RefreshMaxAge = cmp.Or(time.Duration(a.Local.RefreshTTL), localidp.DefaultRefreshTTL)
		}
		a.checker.Source.Cookies = append([]string{a.SessionCookie}, a.checker.Source.Cookies...)
		a.checker.Source.Owned = []string{cfg.Cookies.SessionName(), cfg.Cookies.RefreshName()}
	}
	if a.local != nil {
		cfg.Local = a.local
		a.gateKey = fmt.Sprintf("login_concurrency/%d", a.LoginConcurrency)
		gate, _, _ := loginGates.LoadOrNew(a.gateKey, func() (caddy.Destructor, error) { // cannot fail
			return loginGate{ratelimit.NewGate(a.LoginConcurrency, a.LoginConcurrency, loginWait)}, nil
		})
		a.gate = gate.(loginGate).Gate
		cfg.Gate = a.gate
	} else if cfg.Cognito, err = a.cognitoClient(ctx); err != nil {
		return err
	}
	if a.service, err = authservice.New(cfg); err != nil {
		return fmt.Errorf("setting up the login API: %v", err)
	}
	return nil
}

// cognitoClient returns the client for Cognito logins with the first
// client id.
func (a *Auth) cognitoClient(ctx caddy.Context) (*cognito.Client, error) {
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
		return nil, fmt.Errorf("loading AWS configuration: %v", err)
	}
	if a.CognitoEndpoint != "" {
		cfg.BaseEndpoint = aws.String(a.CognitoEndpoint)
	}
	clientID := "" // Validate refuses an empty client_ids
	if len(a.ClientIDs) > 0 {
		clientID = a.ClientIDs[0]
	}
	return cognito.New(cognitoidentityprovider.NewFromConfig(cfg), clientID, a.ClientSecret), nil
}

// report records a login API request once, like every other request of
// the gateway, and logs an error when the provider or the keys failed.
func (a *Auth) report(r *http.Request, o authservice.Outcome) {
	if o.Err != nil {
		a.logger.Error("login API request failed", zap.String("action", o.Action), zap.String("code", o.Code), zap.Error(o.Err))
	}
	a.rec.Record(r, o.Metrics())
}

// Validate checks the configuration.
func (a *Auth) Validate() error {
	if err := a.Identity.validate(); err != nil {
		return err
	}
	if a.SessionCookie != "" && (&http.Cookie{Name: a.SessionCookie, Value: "x"}).Valid() != nil {
		return fmt.Errorf("session_cookie: %q is not a valid cookie name", a.SessionCookie)
	}
	if p := a.LogoutPath; a.SessionCookie != "" && a.Local != nil && p != "" && p != "off" && p == a.RevokePath {
		return fmt.Errorf("logout_path and revoke_path are both %s: with session_cookie, move one (revoke_path off, say)", p)
	}
	for role := range a.RoleARNs {
		if _, err := roles.Parse(role); err != nil {
			return fmt.Errorf("role_arns: %v", err)
		}
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
// process and across config reloads (old and new handlers side by side).
var loginGates = caddy.NewUsagePool()

// loginGate is a Gate in the usage pool.
type loginGate struct{ *ratelimit.Gate }

// Destruct implements caddy.Destructor; a gate holds nothing to release.
func (loginGate) Destruct() error { return nil }

// loginWait is how long a login waits for a free password check slot.
const loginWait = time.Second

// ServeHTTP serves the login API or authenticates the request.
func (a *Auth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	switch {
	case a.service.Handles(r):
		a.service.ServeHTTP(w, r)
		return nil
	case authservice.IsCORSPreflight(r):
		return next.ServeHTTP(w, r) // CORS preflights carry no credentials
	}
	p, err := a.authenticate(r)
	if err != nil {
		a.checker.AllowOrigin(w, r)
		a.rec.AuthRefused(r, authservice.Refuse(w, err), authservice.LogRejection(a.logger, r, err))
		return nil
	}
	// The user, for later handlers, by the names Caddy's authentication
	// handler uses.
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.auth.user.id", p.ID)
	for name, v := range p.Metadata() {
		repl.Set("http.auth.user."+name, v)
	}
	return next.ServeHTTP(w, r)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Auth)(nil)
	_ caddy.Validator             = (*Auth)(nil)
	_ caddy.CleanerUpper          = (*Auth)(nil)
	_ caddyhttp.MiddlewareHandler = (*Auth)(nil)
)
