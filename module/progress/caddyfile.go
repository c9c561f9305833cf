package progress

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("upload_progress", parseCaddyfile)
	// Before every handler that reads an upload's body (upload_gateway is
	// ordered before respond; handle and route blocks come after this).
	httpcaddyfile.RegisterDirectiveOrder("upload_progress", httpcaddyfile.After, "templates")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	upload_progress [<matcher>] {
//		report_path <path>
//		zone        <name>
//		max_entries <n>
//		expire      <duration>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "report_path":
			if err := shared.OneString(d, &h.ReportPath); err != nil {
				return err
			}
		case "zone":
			if err := shared.OneString(d, &h.Zone); err != nil {
				return err
			}
		case "max_entries":
			var s string
			if err := shared.OneString(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return d.Errf("invalid max_entries '%s': want a positive number", s)
			}
			h.MaxEntries = n
		case "expire":
			var s string
			if err := shared.OneString(d, &s); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil {
				return d.Errf("invalid expire '%s': %v", s, err)
			}
			h.Expire = caddy.Duration(dur)
		default:
			return d.Errf("unrecognized subdirective %s", d.Val())
		}
	}
	return nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	p := new(Handler)
	err := p.UnmarshalCaddyfile(h.Dispenser)
	return p, err
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)
