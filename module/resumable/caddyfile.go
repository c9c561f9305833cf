package resumable

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("upload_tus", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("upload_tus", httpcaddyfile.Before, "respond")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	upload_tus [<matcher>] {
//		# storage, as in upload_gateway
//		bucket, region, endpoint, path_style, access_key_id, secret_access_key,
//		session_token, encryption, kms_key, bucket_key, encryption_context,
//		payload_signing
//
//		prefix       <prefix>
//		temp_prefix  <prefix>
//		secret       <secret>
//		old_secret   <secret>
//		max_size     <size>
//		part_size    <size>
//		upload_ttl   <duration>
//		lock_timeout <duration>
//		allowed_types <type...>
//		allow_anonymous
//		disable_tags
//		max_open_uploads <n>
//		memory_limit <size>
//		memory_wait  <duration>
//		janitor {
//			max_age  <duration>
//			interval <duration>
//			dry_run
//		}
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		if ok, err := h.S3Config.UnmarshalSubdirective(d); ok {
			if err != nil {
				return err
			}
			continue
		}
		var err error
		switch d.Val() {
		case "prefix":
			err = shared.OneString(d, &h.Prefix)
		case "temp_prefix":
			err = shared.OneString(d, &h.TempPrefix)
		case "secret":
			err = shared.OneString(d, &h.Secret)
		case "old_secret":
			var s string
			if err = shared.OneString(d, &s); err == nil {
				h.OldSecrets = append(h.OldSecrets, s)
			}
		case "max_size":
			err = shared.Size(d, &h.MaxSize)
		case "part_size":
			err = shared.Size(d, &h.PartSize)
		case "upload_ttl":
			err = shared.Duration(d, &h.UploadTTL)
		case "lock_timeout":
			err = shared.Duration(d, &h.LockTimeout)
		case "allowed_types":
			h.AllowedTypes = append(h.AllowedTypes, d.RemainingArgs()...)
			if len(h.AllowedTypes) == 0 {
				return d.ArgErr()
			}
		case "allow_anonymous":
			err = shared.BoolFlag(d, &h.AllowAnonymous)
		case "disable_tags":
			err = shared.BoolFlag(d, &h.DisableTags)
		case "max_open_uploads":
			err = shared.Integer(d, &h.MaxOpenUploads)
		case "memory_limit":
			err = shared.Size(d, &h.MemoryLimit)
		case "memory_wait":
			err = shared.Duration(d, &h.MemoryWait)
		case "janitor":
			h.Janitor, err = shared.UnmarshalJanitor(d)
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
	var t Handler
	err := t.UnmarshalCaddyfile(h.Dispenser)
	return &t, err
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
