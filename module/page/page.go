// Package page is the upload page, `http.handlers.upload_page` (Caddyfile
// directive `upload_page`): a page embedded in the binary on which a
// person signs in and uploads files with Uppy's Dashboard straight to S3,
// through the file API's Companion routes, and lists, downloads and deletes
// their files. The page itself (assets, rendering, caching, CSP) lives in
// internal/uploadpage; its sources are the npm package web/upload-page,
// bundled by scripts/build-page.
package page

import (
	"cmp"
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/uploadpage"
)

func init() {
	caddy.RegisterModule(Page{})
}

// Page serves the upload page at `path` (default `/`): the index, and
// `page.js` and `page.css` next to it, for GET and HEAD. Every other
// request goes on to the next handler, so the directive comes before
// `upload_auth` (the page must load before anyone signs in) and needs no
// matcher.
//
// The page works with the handlers of the same site:
//
//   - `upload_auth` with `session_cookie`: the page signs in with
//     `POST <auth_base_path>/auth/login` (built-in identity provider or
//     Cognito), reads the user from `GET <auth_base_path>/auth/session`
//     and signs out with `POST <auth_base_path>/auth/logout`; the HttpOnly
//     session cookie authenticates every later request.
//   - `upload_api` with `base_path` equal to `api_base_path`: Uppy's
//     @uppy/aws-s3 uploads in Companion mode (`<api_base_path>/s3/…`), the
//     limits come from `GET <api_base_path>/files/limits`, single uploads
//     are confirmed with `POST <api_base_path>/files/{fileId}/confirm`, and
//     the file list, downloads and deletes use the file API.
//
// Every answer carries a Content-Security-Policy that allows scripts,
// styles and connections to the page's own origin only, images from
// `blob:` and `data:` (Uppy's previews and icons), and connections to
// the `connect_origins`: list the S3 endpoint the file API signs URLs for,
// or the browser may not upload to it.
type Page struct {
	// The path the page is served at; `page.js` and `page.css` are next
	// to it. Default `/`.
	Path string `json:"path,omitempty"`

	// The file API's base path: `base_path` of `upload_api`. Default
	// `/api`.
	APIBasePath string `json:"api_base_path,omitempty"`

	// The path before the login API's `/auth/login`, `/auth/session` and
	// `/auth/logout`. Default: none (`/auth/login`).
	AuthBasePath string `json:"auth_base_path,omitempty"`

	// The page's title and heading. Default `Upload files`.
	Title string `json:"title,omitempty"`

	// Origins (`scheme://host[:port]`, the host may start with `*.`) the
	// browser may connect to besides the page's own, for the
	// Content-Security-Policy: the S3 endpoint of the presigned URLs, e.g.
	// `https://uploads.s3.eu-west-1.amazonaws.com`. Placeholders such as
	// `{env.S3_ORIGIN}` are expanded.
	ConnectOrigins []string `json:"connect_origins,omitempty"`

	page   *uploadpage.Page
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Page) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.upload_page",
		New: func() caddy.Module { return new(Page) },
	}
}

// Provision renders the page.
func (p *Page) Provision(ctx caddy.Context) error {
	p.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	p.APIBasePath = cmp.Or(p.APIBasePath, "/api")
	var origins []string
	for _, o := range p.ConnectOrigins {
		if v := repl.ReplaceAll(o, ""); v != "" {
			origins = append(origins, v)
		}
	}
	if len(origins) == 0 {
		p.logger.Warn("upload_page has no connect_origins: the Content-Security-Policy lets the page connect to its own origin only, so browsers refuse to upload to S3 unless S3 is on the same origin")
	}
	page, err := uploadpage.New(uploadpage.Config{
		Path:           p.Path,
		APIBase:        p.APIBasePath,
		AuthBase:       p.AuthBasePath,
		Title:          repl.ReplaceAll(p.Title, ""),
		ConnectOrigins: origins,
	})
	if err != nil {
		return fmt.Errorf("setting up the upload page: %v", err)
	}
	p.page = page
	return nil
}

// Validate checks the configuration.
func (p *Page) Validate() error {
	for name, v := range map[string]string{"path": p.Path, "api_base_path": p.APIBasePath, "auth_base_path": p.AuthBasePath} {
		if v != "" && !strings.HasPrefix(v, "/") {
			return fmt.Errorf("%s %q must start with /", name, v)
		}
	}
	return nil
}

// ServeHTTP serves the page, or passes the request on.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !p.page.Handles(r) {
		return next.ServeHTTP(w, r)
	}
	p.page.ServeHTTP(w, r)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Page)(nil)
	_ caddy.Validator             = (*Page)(nil)
	_ caddyhttp.MiddlewareHandler = (*Page)(nil)
)
