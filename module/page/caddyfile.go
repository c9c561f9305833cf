package page

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("upload_page", shared.ParseHandler[Page])
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
	return shared.Block(d, nil, func(name string) error {
		switch name {
		case "path":
			return shared.OneString(d, &p.Path)
		case "api_base_path":
			return shared.OneString(d, &p.APIBasePath)
		case "auth_base_path":
			return shared.OneString(d, &p.AuthBasePath)
		case "title":
			return shared.OneString(d, &p.Title)
		case "connect_origins":
			return shared.Strings(d, &p.ConnectOrigins)
		}
		return shared.Unrecognized(d)
	})
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Page)(nil)
