package ops

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("upload_health", parseHealthCaddyfile)
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
	for d.NextBlock(0) {
		if ok, err := h.S3Config.UnmarshalSubdirective(d); ok {
			if err != nil {
				return err
			}
			continue
		}
		switch d.Val() {
		case "prefix":
			if err := shared.OneString(d, &h.Prefix); err != nil {
				return err
			}
		case "cache_for", "timeout":
			dst := &h.CacheFor
			if d.Val() == "timeout" {
				dst = &h.Timeout
			}
			var s string
			if err := shared.OneString(d, &s); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil {
				return d.Errf("invalid duration '%s': %v", s, err)
			}
			*dst = caddy.Duration(dur)
		default:
			return d.Errf("unrecognized subdirective %s", d.Val())
		}
	}
	return nil
}

func parseHealthCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var hl Health
	err := hl.UnmarshalCaddyfile(h.Dispenser)
	return &hl, err
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Health)(nil)
