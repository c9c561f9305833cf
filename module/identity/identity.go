// Package identity authenticates requests: the `http.handlers.upload_auth`
// handler (Caddyfile `upload_auth`: token check, and the login API), the
// `http.authentication.providers.upload_auth` provider for Caddy's
// `authentication` handler, the token verification settings both share
// ([Identity], for Cognito or the built-in local identity provider), and
// the `upload-gateway-rotate-key` command. It owns their configuration and
// glue; the token check and the login API are internal/authservice's, the
// role mapping internal/roles', the tokens internal/jwtauth's and
// internal/localidp's.
package identity

import (
	"cmp"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"

	"github.com/caddy-upload-gateway/upload-gateway/internal/authservice"
	"github.com/caddy-upload-gateway/upload-gateway/internal/csrf"
	"github.com/caddy-upload-gateway/upload-gateway/internal/jwtauth"
	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
	"github.com/caddy-upload-gateway/upload-gateway/internal/tokensource"
)

func init() {
	caddy.RegisterModule(Provider{})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "upload-gateway-rotate-key",
		Usage: "--keys-dir <dir>",
		Short: "Rotates the signing key of the local identity provider",
		Long: `
Writes a new signing key into the keys directory of the upload_auth local
identity provider. New tokens are signed with it; running gateways sharing
the directory pick it up without a restart, and tokens signed with the
previous key stay valid until the retention period ends.

Password hashes for the users file come from: caddy hash-password`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("keys-dir", "", "The keys_dir of the local identity provider")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
				dir := fl.String("keys-dir")
				if dir == "" {
					return caddy.ExitCodeFailedStartup, fmt.Errorf("--keys-dir is required")
				}
				kid, err := localidp.RotateDir(dir)
				if err != nil {
					return caddy.ExitCodeFailedStartup, err
				}
				fmt.Println("new signing key:", kid)
				return caddy.ExitCodeSuccess, nil
			})
		},
	})
}

// Identity holds the token verification settings shared by the
// `upload_auth` handler and the `upload_auth` authentication provider. Tokens
// come either from an AWS Cognito user pool (or another OIDC issuer) or from
// the built-in local identity provider.
type Identity struct {
	// The AWS region of the Cognito user pool.
	Region string `json:"region,omitempty"`

	// The Cognito user pool id, e.g. `eu-west-1_AbCdEf123`. With region, it
	// sets the issuer `https://cognito-idp.<region>.amazonaws.com/<pool>`.
	UserPoolID string `json:"user_pool_id,omitempty"`

	// The expected token issuer, for other OIDC issuers and emulators.
	// Overrides region and user_pool_id.
	Issuer string `json:"issuer,omitempty"`

	// Where the issuer's signing keys are. Default `<issuer>/.well-known/jwks.json`.
	JWKSURL string `json:"jwks_url,omitempty"`

	// The app client ids tokens must be issued to (`aud` of id tokens,
	// `client_id` of access tokens). The first one is used for logins.
	ClientIDs []string `json:"client_ids,omitempty"`

	// The kind of token accepted: `id` (default), `access` or `any`.
	TokenUse string `json:"token_use,omitempty"`

	// Signature algorithms accepted. Default `RS256` (`ES256` for the local
	// provider). `none` and HMAC algorithms are never accepted.
	Algorithms []string `json:"algorithms,omitempty"`

	// Clock skew tolerated for `exp` and `nbf`. Default 30s.
	Leeway caddy.Duration `json:"leeway,omitempty"`

	// The claim holding the user's groups. Default `cognito:groups`.
	RoleClaim string `json:"role_claim,omitempty"`

	// Group → role (`admin`, `uploader` or `viewer`). The highest role of a
	// user's groups wins. Default: groups named admin(s), uploader(s) and
	// viewer(s) map to those roles.
	RoleMap map[string]string `json:"role_map,omitempty"`

	// The role of users whose groups map to none. Default: no role, which
	// handlers that require a role deny.
	DefaultRole string `json:"default_role,omitempty"`

	// The built-in identity provider, for dev and edge deployments without
	// Cognito. When set, the Cognito settings are ignored.
	Local *LocalIdentity `json:"local,omitempty"`

	// The name of a cookie the token may come in when the request has no
	// Authorization header, for plain HTML forms a browser posts (an
	// Amplify or Cognito hosted-UI id-token cookie, say). The cookie should
	// be `SameSite=Lax` or `Strict`. A request authenticated by it whose
	// method is not GET, HEAD or OPTIONS must come from this site or one of
	// allowed_origins (see there). Default: none, only the header is read.
	TokenCookie string `json:"token_cookie,omitempty"`

	// Origins besides the site's own (`https://app.example.com`) whose pages
	// may send state-changing requests authenticated by a cookie
	// (token_cookie, or upload_auth's session_cookie), and read upload_auth's
	// refusals (CORS). Such a request (not GET, HEAD or OPTIONS) must carry
	// an `Origin` (or, lacking it, a `Referer`) naming the request's own
	// origin (as the client saw it: behind a proxy in the server's
	// `trusted_proxies`, its `X-Forwarded-Proto` and `X-Forwarded-Host`) or
	// one of these; otherwise it is refused with 403 `CSRF_ORIGIN` (the
	// authentication provider answers 401) before any handler runs.
	// Requests with a bearer token in the Authorization header are not
	// checked. Default: none, only the site's own origin.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`

	// The name of a query parameter the token may come in when there is no
	// Authorization header and no token cookie; it is removed from the
	// request before the handlers after this one see it. Tokens in URLs
	// end up in browser history and logs: use it only for clients that can
	// send neither a header nor a cookie. Default: none.
	TokenQuery string `json:"token_query,omitempty"`

	verifier *jwtauth.Verifier
	checker  authservice.Checker
	local    *localidp.Provider
	// startRefresh starts refreshing the keys in the background, for as
	// long as the module's context lives; it runs once, on the first
	// request, so that provisioning makes no network calls.
	startRefresh func()
}

// LocalIdentity configures the built-in identity provider: users in a file
// with bcrypt password hashes (`caddy hash-password` makes them), tokens
// signed by the gateway with ES256 keys kept in a directory.
type LocalIdentity struct {
	// The users file: `{"users":[{"email":…,"password_hash":…,"groups":[…]}]}`.
	// Hashes must be bcrypt with cost 10 to 14. A user's optional
	// `"token_generation"` number, when raised, ends all of their sessions
	// (refresh tokens). Refused if group or others may write to it.
	UsersFile string `json:"users_file,omitempty"`

	// The directory of signing keys, created with mode 0700 if missing.
	// Instances sharing it share keys; a rotated key is picked up without
	// restart. Its subdirectory `revoked` records used refresh tokens and
	// revoked sessions. Refused if group or others may write to it, or
	// read a key file in it.
	KeysDir string `json:"keys_dir,omitempty"`

	// The `iss` of issued tokens. Default `upload-gateway-local`.
	Issuer string `json:"issuer,omitempty"`

	// The `aud`/`client_id` of issued tokens. Default `upload-gateway`.
	ClientID string `json:"client_id,omitempty"`

	// Lifetime of id and access tokens. Default 1h.
	TokenTTL caddy.Duration `json:"token_ttl,omitempty"`

	// Lifetime of refresh tokens. Default 720h.
	RefreshTTL caddy.Duration `json:"refresh_ttl,omitempty"`

	// How long a used refresh token still gets tokens of its session (two
	// tabs renewing at once); later, reuse revokes the session. Default 30s.
	ReuseGrace caddy.Duration `json:"reuse_grace,omitempty"`
}

// provision sets up verification. It reads local files but makes no network
// calls: keys are fetched on first use.
func (id *Identity) provision(ctx caddy.Context) error {
	repl := caddy.NewReplacer()
	for _, p := range []*string{&id.Issuer, &id.JWKSURL, &id.UserPoolID, &id.Region} {
		*p = repl.ReplaceAll(*p, "")
	}
	for i, c := range id.ClientIDs {
		id.ClientIDs[i] = repl.ReplaceAll(c, "")
	}

	mapper, err := roles.NewMapper(id.RoleClaim, id.RoleMap, id.DefaultRole)
	if err != nil {
		return fmt.Errorf("parsing roles: %v", err)
	}
	origins, err := csrf.New(id.AllowedOrigins)
	if err != nil {
		return fmt.Errorf("parsing allowed_origins: %v", err)
	}
	origins.Forwarded = fromTrustedProxy
	id.checker = authservice.Checker{Roles: mapper, Origins: origins, Source: tokensource.Source{Query: id.TokenQuery}}
	if id.TokenCookie != "" {
		id.checker.Source.Cookies = []string{id.TokenCookie}
	}

	cfg := jwtauth.Config{
		TokenUse:   id.TokenUse,
		Algorithms: id.Algorithms,
		Leeway:     time.Duration(id.Leeway),
	}
	if l := id.Local; l != nil {
		l.Issuer = cmp.Or(l.Issuer, "upload-gateway-local")
		l.ClientID = cmp.Or(l.ClientID, "upload-gateway")
		id.local, err = localidp.Open(repl.ReplaceAll(l.UsersFile, ""), repl.ReplaceAll(l.KeysDir, ""), localidp.Issuer{
			Issuer: l.Issuer, ClientID: l.ClientID, TokenTTL: time.Duration(l.TokenTTL), RefreshTTL: time.Duration(l.RefreshTTL),
			ReuseGrace: time.Duration(l.ReuseGrace)})
		if err != nil {
			return err
		}
		cfg.Issuer = l.Issuer
		cfg.Keys = id.local
		// The keys are on local disk: a rotated key may be looked up soon.
		cfg.MinRefreshInterval = time.Second
		cfg.Audiences = []string{l.ClientID}
		if len(cfg.Algorithms) == 0 {
			cfg.Algorithms = []string{"ES256"}
		}
	} else {
		cfg.Issuer = cmp.Or(strings.TrimRight(id.Issuer, "/"), fmt.Sprintf("https://cognito-idp.%s.amazonaws.com/%s", id.Region, id.UserPoolID))
		cfg.JWKSURL = id.JWKSURL
		cfg.Audiences = id.ClientIDs
	}
	v, err := jwtauth.New(cfg)
	if err != nil {
		return fmt.Errorf("configuring token verification: %v", err)
	}
	id.verifier, id.checker.Verifier = v, v
	id.startRefresh = sync.OnceFunc(func() { v.Start(ctx) })
	return nil
}

// validate checks the identity settings.
func (id *Identity) validate() error {
	if _, err := csrf.New(id.AllowedOrigins); err != nil {
		return fmt.Errorf("allowed_origins: %v", err)
	}
	switch {
	case id.Local != nil:
	case id.Issuer == "" && (id.Region == "" || id.UserPoolID == ""):
		return fmt.Errorf("set region and user_pool_id (or issuer), or configure the local identity provider")
	case len(id.ClientIDs) == 0:
		return fmt.Errorf("client_ids is required: tokens must be checked against the app client")
	case id.TokenUse != "" && id.TokenUse != "id" && id.TokenUse != "access" && id.TokenUse != "any":
		return fmt.Errorf("token_use must be id, access or any")
	}
	return nil
}

// fromTrustedProxy reports whether r came from a proxy in the server's
// trusted_proxies, whose X-Forwarded-* headers Caddy then trusts.
func fromTrustedProxy(r *http.Request) bool {
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	return trusted
}

// authenticate verifies the request's token (see
// authservice.Checker.Authenticate).
func (id *Identity) authenticate(r *http.Request) (*authservice.Principal, error) {
	id.startRefresh()
	return id.checker.Authenticate(r)
}

// Provider is an authentication provider for Caddy's `authentication`
// handler that accepts the same bearer tokens as the `upload_auth` handler:
//
//	{"handler": "authentication", "providers": {"upload_auth": {"region": …, "user_pool_id": …, "client_ids": […]}}}
//
// The user's id is `{http.auth.user.id}`; email, email_verified ("true" or
// "false"), username, role, groups and token_use are set as
// `{http.auth.user.<name>}`. CORS preflights (OPTIONS with `Origin` and
// `Access-Control-Request-Method`, no body) pass without a token; other
// OPTIONS requests need one. A state-changing request authenticated by
// `token_cookie` must come from the site or `allowed_origins` (the CSRF
// rule of the upload_auth handler), or it is not authenticated. A rejected
// request gets `WWW-Authenticate: Bearer error="invalid_token"` and the
// handler's 401.
// Use the `upload_auth` handler for JSON errors and the login API.
type Provider struct {
	Identity

	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Provider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.authentication.providers.upload_auth",
		New: func() caddy.Module { return new(Provider) },
	}
}

// Provision sets up the provider without network calls.
func (p *Provider) Provision(ctx caddy.Context) error {
	p.logger = ctx.Logger()
	return p.Identity.provision(ctx)
}

// Validate checks the configuration.
func (p *Provider) Validate() error { return p.Identity.validate() }

// Authenticate verifies the request's bearer token.
func (p *Provider) Authenticate(w http.ResponseWriter, r *http.Request) (caddyauth.User, bool, error) {
	if authservice.IsCORSPreflight(r) {
		return caddyauth.User{}, true, nil // CORS preflights carry no credentials
	}
	pr, err := p.authenticate(r)
	if err != nil {
		authservice.LogRejection(p.logger, r, err)
		w.Header().Set("WWW-Authenticate", authservice.Challenge(err))
		return caddyauth.User{}, false, nil
	}
	return caddyauth.User{ID: pr.ID, Metadata: pr.Metadata()}, true, nil
}

// Interface guards
var (
	_ caddy.Provisioner       = (*Provider)(nil)
	_ caddy.Validator         = (*Provider)(nil)
	_ caddyauth.Authenticator = (*Provider)(nil)
)
