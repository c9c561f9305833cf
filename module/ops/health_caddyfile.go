package ops

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("upload_health", shared.ParseHandler[Health])
	httpcaddyfile.RegisterDirectiveOrder("upload_health", httpcaddyfile.Before, "respond")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	upload_health [<matcher>] [live|ready] {
//	    # storage, as in upload_gateway (probe ready only)
//	    bucket <name>
//	    region <region>
//	    endpoint <url>
//	    path_style
//	    access_key_id <id>
//	    secret_access_key <key>
//	    encryption aws:kms|AES256|none
//	    kms_key <id|arn|alias>
//	    ...
//	    prefix <key prefix>
//	    cache_for <duration>
//	    timeout <duration>
//	}
func (h *Health) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		h.Probe = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return shared.Subdirectives(d, &h.S3Config, func(name string) error {
		switch name {
		case "prefix":
			return shared.OneString(d, &h.Prefix)
		case "cache_for":
			return shared.Duration(d, &h.CacheFor)
		case "timeout":
			return shared.Duration(d, &h.Timeout)
		}
		return shared.Unrecognized(d)
	})
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Health)(nil)
