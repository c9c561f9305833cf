package files

import (
	"cmp"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-upload-gateway/upload-gateway/internal/cors"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

// CORSConfig lets pages on other origins call the file API from a browser
// (see package internal/cors). Preflights (OPTIONS with `Origin` and
// `Access-Control-Request-Method`) of every route under `<base_path>`
// are answered by the API itself: 204 with the allowed methods (GET, POST,
// DELETE), headers and max age, or 403 JSON `CORS_NOT_ALLOWED` when the
// origin, method or a header is not allowed. Answers to requests from an
// allowed origin carry `Access-Control-Allow-Origin` (that origin, never
// `*`); other origins get no CORS headers. Every answer has `Vary: Origin`.
//
// The S3 bucket needs its own CORS rule for the presigned URLs (see the
// README, "Browser uploads with Uppy").
type CORSConfig struct {
	// Origins allowed: `https://app.example.com` (scheme, host and port
	// exactly), `https://*.example.com` (any subdomain), or `*` (any
	// origin; the answer still names the request's origin; not with
	// credentials). Required.
	Origins []string `json:"origins,omitempty"`

	// Request headers a page may send. `*` admits any. Default
	// `Authorization`, `Content-Type`.
	Headers []string `json:"headers,omitempty"`

	// Response headers a page may read besides the CORS-safelisted ones.
	// Default `Retry-After` (sent with 429).
	ExposeHeaders []string `json:"expose_headers,omitempty"`

	// How long a browser may cache a preflight's answer. Default 10m;
	// browsers cap it (Chromium at 2h, Firefox at 24h).
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// Let requests carry cookies (`Access-Control-Allow-Credentials:
	// true`), for a session cookie. Default: off, for Bearer tokens.
	Credentials bool `json:"credentials,omitempty"`
}

// DefaultCORSMaxAge is the max age of a cors block without one.
const DefaultCORSMaxAge = 10 * time.Minute

// policy builds the CORS policy of the configuration.
func (c *CORSConfig) policy() (*cors.Policy, error) {
	expose := c.ExposeHeaders
	if len(expose) == 0 {
		expose = []string{"Retry-After"}
	}
	p, err := cors.New(cors.Config{
		Origins:       c.Origins,
		Headers:       c.Headers,
		ExposeHeaders: expose,
		MaxAge:        cmp.Or(time.Duration(c.MaxAge), DefaultCORSMaxAge),
		Credentials:   c.Credentials,
	})
	if err != nil {
		return nil, fmt.Errorf("configuring cors: %v", err)
	}
	return p, nil
}

// unmarshalCORS parses a cors block:
//
//	cors {
//		origins        <origin...>
//		headers        <header...>
//		expose_headers <header...>
//		max_age        <duration>
//		credentials
//	}
func unmarshalCORS(d *caddyfile.Dispenser) (*CORSConfig, error) {
	c := new(CORSConfig)
	err := shared.Nested(d, func(name string) error {
		switch name {
		case "origins":
			return shared.Strings(d, &c.Origins)
		case "headers":
			return shared.Strings(d, &c.Headers)
		case "expose_headers":
			return shared.Strings(d, &c.ExposeHeaders)
		case "max_age":
			return shared.Duration(d, &c.MaxAge)
		case "credentials":
			return shared.BoolFlag(d, &c.Credentials)
		}
		return d.Errf("unrecognized cors option %s", name)
	})
	if err != nil {
		return nil, err
	}
	if len(c.Origins) == 0 {
		return nil, d.Err("cors needs origins")
	}
	return c, nil
}
