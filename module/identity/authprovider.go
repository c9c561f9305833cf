package identity

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"

	"github.com/caddy-upload-gateway/upload-gateway/internal/authservice"
)

func init() {
	caddy.RegisterModule(Provider{})
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
// request gets
// `WWW-Authenticate: Bearer error="invalid_token"` and the handler's 401.
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
		logRejection(p.logger, r, err)
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
