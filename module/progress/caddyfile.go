package progress

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("upload_progress", shared.ParseHandler[Handler])
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
	return shared.Block(d, nil, func(name string) error {
		switch name {
		case "report_path":
			return shared.OneString(d, &h.ReportPath)
		case "zone":
			return shared.OneString(d, &h.Zone)
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
			return nil
		case "expire":
			return shared.Duration(d, &h.Expire)
		}
		return shared.Unrecognized(d)
	})
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)
