package page

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("upload_page", parseCaddyfile)
	// Before upload_auth (ordered after basic_auth): the page loads
	// before anyone has signed in.
	httpcaddyfile.RegisterDirectiveOrder("upload_page", httpcaddyfile.Before, "basic_auth")
}

// UnmarshalCaddyfile sets up the page from Caddyfile tokens. Syntax:
//
//	upload_page [<matcher>] {
//		path            <path>
//		api_base_path   <path>
//		auth_base_path  <path>
//		title           <title>
//		connect_origins <origin...>
//	}
func (p *Page) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "path":
			err = shared.OneString(d, &p.Path)
		case "api_base_path":
			err = shared.OneString(d, &p.APIBasePath)
		case "auth_base_path":
			err = shared.OneString(d, &p.AuthBasePath)
		case "title":
			err = shared.OneString(d, &p.Title)
		case "connect_origins":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			p.ConnectOrigins = append(p.ConnectOrigins, args...)
		default:
			return d.Errf("unrecognized subdirective %s", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	p := new(Page)
	err := p.UnmarshalCaddyfile(h.Dispenser)
	return p, err
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Page)(nil)
