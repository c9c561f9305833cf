package gateway

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-upload-gateway/upload-gateway/internal/refusal"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("upload_gateway", shared.ParseHandler[Gateway])
	httpcaddyfile.RegisterDirectiveOrder("upload_gateway", httpcaddyfile.Before, "respond")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	upload_gateway [<matcher>] {
//		bucket            <name>
//		region            <region>
//		endpoint          <url>
//		path_style
//		access_key_id     <id>
//		secret_access_key <secret>
//		session_token     <token>
//
//		encryption         aws:kms|AES256|none
//		kms_key            <id|arn|alias>
//		bucket_key
//		encryption_context <name> <value>
//		payload_signing    auto|signed|unsigned
//
//		part_size     <size>
//		concurrency   <n>
//		checksum      CRC32C|CRC32|CRC64NVME|SHA1|SHA256
//		hash          sha256|none
//		s3_timeout    <duration>
//		abort_timeout <duration>
//		memory_limit  <size>
//		memory_wait   <duration>
//		disable_tags
//
//		read_timeout           <duration>
//		min_rate               <size>[/s]|off
//		max_uploads_per_client <n>|off
//		max_memory_per_client  <size>|off
//
//		prefix <prefix>
//		key    <template>
//
//		max_file_size    <size>
//		max_request_size <size>
//		max_files        <n>
//		max_fields       <n>
//		max_field_size   <size>
//		max_form_size    <size>
//		allowed_types    <type...>
//
//		filename_header <header>
//		metadata        <name> <template>
//		client_metadata
//
//		output        respond|pass
//		pass_field    <name-template> <value-template>
//		pass_field_style dotted|nested
//		pass_form_fields <regexp...>
//		pass_signature <name-template> <secret>
//		non_multipart store|pass|reject
//		rollback_on   <status...>
//		allowed_roles admin|uploader|viewer...
//		allow_anonymous
//		route         <name for metrics>
//		janitor {
//			max_age  <duration>
//			interval <duration>
//			dry_run
//		}
//		handle_errors
//		on_error redirect <url-template> [<status>...]
//		on_error pass     <field>        [<status>...]
//	}
//
// Sizes take units (`16MiB`, `1GB`); statuses take classes (`4xx`, `5xx`).
// `pass_field` may be repeated; the first one replaces the default fields.
// `pass_form_fields` may be repeated; a plain field matching any of its
// regular expressions is forwarded.
func (g *Gateway) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return shared.Block(d, &g.S3Config, func(name string) error {
		var err error
		switch name {
		case "part_size":
			err = shared.Size(d, &g.PartSize)
		case "concurrency":
			err = shared.Integer(d, &g.Concurrency)
		case "checksum":
			err = shared.OneString(d, &g.Checksum)
		case "hash":
			err = shared.OneString(d, &g.Hash)
		case "s3_timeout":
			err = shared.Duration(d, &g.S3Timeout)
		case "abort_timeout":
			err = shared.Duration(d, &g.AbortTimeout)
		case "memory_limit":
			err = shared.Size(d, &g.MemoryLimit)
		case "memory_wait":
			err = shared.Duration(d, &g.MemoryWait)
		case "read_timeout":
			err = shared.Duration(d, &g.ReadTimeout)
		case "min_rate":
			err = shared.Off(d, &g.MinRate, shared.Rate)
		case "max_memory_per_client":
			err = shared.Off(d, &g.MaxMemoryPerClient, shared.Size)
		case "max_uploads_per_client":
			err = shared.Off(d, &g.MaxUploadsPerClient, shared.Integer)
		case "disable_tags":
			err = shared.BoolFlag(d, &g.DisableTags)
		case "prefix":
			err = shared.OneString(d, &g.Prefix)
		case "key":
			err = shared.OneString(d, &g.Key)
		case "max_file_size":
			err = shared.Size(d, &g.MaxFileSize)
		case "max_request_size":
			err = shared.Size(d, &g.MaxRequestSize)
		case "max_files":
			err = shared.Integer(d, &g.MaxFiles)
		case "max_fields":
			err = shared.Integer(d, &g.MaxFields)
		case "max_form_size":
			err = shared.Size(d, &g.MaxFormSize)
		case "max_field_size":
			err = shared.Size(d, &g.MaxFieldSize)
		case "allowed_types":
			err = shared.Strings(d, &g.AllowedTypes)
		case "filename_header":
			err = shared.OneString(d, &g.FilenameHeader)
		case "metadata":
			err = shared.Pair(d, &g.Metadata)
		case "client_metadata":
			err = shared.BoolFlag(d, &g.ClientMetadata)
		case "output":
			err = shared.OneString(d, &g.Output)
		case "pass_field":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.ArgErr()
			}
			g.PassFields = append(g.PassFields, PassField{Name: args[0], Value: args[1]})
		case "pass_field_style":
			err = shared.OneString(d, &g.PassFieldStyle)
		case "pass_form_fields":
			err = shared.Strings(d, &g.PassFormFields)
		case "non_multipart":
			err = shared.OneString(d, &g.NonMultipart)
		case "pass_signature":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.ArgErr()
			}
			g.PassSignature = &PassSignature{Field: args[0], Secret: args[1]}
		case "rollback_on":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, a := range args {
				code, err := shared.StatusCode(a)
				if err != nil {
					return d.Errf("rollback_on: %v", err)
				}
				g.RollbackOn = append(g.RollbackOn, code)
			}
		case "janitor":
			g.Janitor, err = shared.UnmarshalJanitor(d)
		case "route":
			err = shared.OneString(d, &g.Route)
		case "allowed_roles":
			err = shared.Strings(d, &g.AllowedRoles)
		case "allow_anonymous":
			err = shared.BoolFlag(d, &g.AllowAnonymous)
		case "handle_errors":
			err = shared.BoolFlag(d, &g.HandleErrors)
		case "on_error":
			g.OnError, err = unmarshalOnError(d)
		default:
			return shared.Unrecognized(d)
		}
		return err
	})
}

// unmarshalOnError parses `on_error redirect <url> [<status>...]` or
// `on_error pass <field> [<status>...]`.
func unmarshalOnError(d *caddyfile.Dispenser) (*refusal.Policy, error) {
	args := d.RemainingArgs()
	if len(args) < 2 {
		return nil, d.ArgErr()
	}
	o := new(refusal.Policy)
	switch args[0] {
	case "redirect":
		o.Redirect = args[1]
	case "pass":
		o.PassField = args[1]
	default:
		return nil, d.Errf("on_error: unknown action %q (want redirect or pass)", args[0])
	}
	for _, a := range args[2:] {
		code, err := shared.StatusCode(a)
		if err != nil || (code > 5 && code < 400) || code < 4 {
			return nil, d.Errf("on_error: invalid status %q", a)
		}
		o.Statuses = append(o.Statuses, code)
	}
	return o, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Gateway)(nil)
