package files

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("upload_api", shared.ParseHandler[API])
	httpcaddyfile.RegisterDirectiveOrder("upload_api", httpcaddyfile.Before, "respond")
}

// UnmarshalCaddyfile sets up the file API from Caddyfile tokens. Syntax:
//
//	upload_api [<matcher>] {
//		# storage, as in upload_gateway
//		bucket, region, endpoint, path_style, access_key_id, secret_access_key,
//		session_token, encryption, kms_key, bucket_key, encryption_context,
//		payload_signing
//
//		prefix       <prefix>
//		base_path    <path>
//		cors {
//			origins        <origin...>
//			headers        <header...>
//			expose_headers <header...>
//			max_age        <duration>
//			credentials
//		}
//		role_arn     [<role>] <arn>
//		sts_endpoint <url>
//		post_policy_credentials session|gateway
//		sts_duration <duration>
//		secret       <secret>
//		insecure_random_secret
//		old_secret   <secret>
//		url_expiry   <duration>
//		upload_ttl   <duration>
//		max_single_size <size>
//		max_file_size   <size>
//		part_size       <size>
//		part_batch      <n>
//		sign_all_parts  <max>
//		max_concurrent_initiates <n>
//		create_only  auto|on|off
//		allowed_types   <type...>
//		policy <role> <action> own|all|none
//		janitor {
//			max_age  <duration>
//			interval <duration>
//			dry_run
//		}
//	}
func (a *API) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return shared.Block(d, &a.S3Config, func(name string) error {
		var err error
		switch name {
		case "prefix":
			err = shared.OneString(d, &a.Prefix)
		case "base_path":
			err = shared.OneString(d, &a.BasePath)
		case "cors":
			a.CORS, err = unmarshalCORS(d)
		case "role_arn":
			args := d.RemainingArgs()
			if a.RoleARNs == nil {
				a.RoleARNs = map[string]string{}
			}
			switch len(args) {
			case 1:
				a.RoleARNs["*"] = args[0]
			case 2:
				a.RoleARNs[args[0]] = args[1]
			default:
				return d.ArgErr()
			}
		case "post_policy_credentials":
			err = shared.OneString(d, &a.PostPolicyCredentials)
		case "sts_endpoint":
			err = shared.OneString(d, &a.STSEndpoint)
		case "sts_duration":
			err = shared.Duration(d, &a.STSDuration)
		case "secret":
			err = shared.OneString(d, &a.Secret)
		case "insecure_random_secret":
			err = shared.BoolFlag(d, &a.InsecureRandomSecret)
		case "old_secret":
			var s string
			if err = shared.OneString(d, &s); err == nil {
				a.OldSecrets = append(a.OldSecrets, s)
			}
		case "url_expiry":
			err = shared.Duration(d, &a.URLExpiry)
		case "upload_ttl":
			err = shared.Duration(d, &a.UploadTTL)
		case "max_single_size":
			err = shared.Size(d, &a.MaxSingleSize)
		case "max_file_size":
			err = shared.Size(d, &a.MaxFileSize)
		case "part_size":
			err = shared.Size(d, &a.PartSize)
		case "part_batch":
			err = shared.Integer(d, &a.PartBatch)
		case "sign_all_parts":
			err = shared.Integer(d, &a.SignAllParts)
		case "max_concurrent_initiates":
			err = shared.Integer(d, &a.MaxConcurrentInitiates)
		case "create_only":
			err = shared.OneString(d, &a.CreateOnly)
		case "allowed_types":
			err = shared.Strings(d, &a.AllowedTypes)
		case "janitor":
			a.Janitor, err = shared.UnmarshalJanitor(d)
		case "policy":
			args := d.RemainingArgs()
			if len(args) != 3 {
				return d.ArgErr()
			}
			if a.Policy == nil {
				a.Policy = map[string]map[string]string{}
			}
			if a.Policy[args[0]] == nil {
				a.Policy[args[0]] = map[string]string{}
			}
			a.Policy[args[0]][args[1]] = args[2]
		default:
			return shared.Unrecognized(d)
		}
		return err
	})
}

// Interface guard
var _ caddyfile.Unmarshaler = (*API)(nil)
