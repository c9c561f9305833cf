package resumable

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("upload_tus", shared.ParseHandler[Handler])
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
	return shared.Block(d, &h.S3Config, func(name string) error {
		switch name {
		case "prefix":
			return shared.OneString(d, &h.Prefix)
		case "temp_prefix":
			return shared.OneString(d, &h.TempPrefix)
		case "secret":
			return shared.OneString(d, &h.Secret)
		case "old_secret":
			var s string
			err := shared.OneString(d, &s)
			h.OldSecrets = append(h.OldSecrets, s)
			return err
		case "max_size":
			return shared.Size(d, &h.MaxSize)
		case "part_size":
			return shared.Size(d, &h.PartSize)
		case "upload_ttl":
			return shared.Duration(d, &h.UploadTTL)
		case "lock_timeout":
			return shared.Duration(d, &h.LockTimeout)
		case "allowed_types":
			return shared.Strings(d, &h.AllowedTypes)
		case "allow_anonymous":
			return shared.BoolFlag(d, &h.AllowAnonymous)
		case "disable_tags":
			return shared.BoolFlag(d, &h.DisableTags)
		case "max_open_uploads":
			return shared.Integer(d, &h.MaxOpenUploads)
		case "memory_limit":
			return shared.Size(d, &h.MemoryLimit)
		case "memory_wait":
			return shared.Duration(d, &h.MemoryWait)
		case "janitor":
			var err error
			h.Janitor, err = shared.UnmarshalJanitor(d)
			return err
		}
		return shared.Unrecognized(d)
	})
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
