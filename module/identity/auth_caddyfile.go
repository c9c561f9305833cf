package identity

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-upload-gateway/upload-gateway/internal/authservice"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("upload_auth", shared.ParseHandler[Auth])
	httpcaddyfile.RegisterDirectiveOrder("upload_auth", httpcaddyfile.After, "basic_auth")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	upload_auth [<matcher>] {
//		cognito          <region> <user_pool_id>
//		issuer           <url>
//		jwks_url         <url>
//		client_id        <id...>
//		client_secret    <secret>
//		cognito_endpoint <url>
//		token_use        id|access|any
//		token_cookie     <name>
//		token_query      <name>
//		session_cookie   [<name>]
//		allowed_origins  <origin...>
//		algorithms       <alg...>
//		leeway           <duration>
//
//		role_claim   <claim>
//		role_map     <group> admin|uploader|viewer
//		default_role admin|uploader|viewer
//		role_arn     admin|uploader|viewer <arn>
//		expose_role_arn
//
//		local {
//			users_file  <path>
//			keys_dir    <path>
//			issuer      <iss>
//			client_id   <id>
//			token_ttl   <duration>
//			refresh_ttl <duration>
//			reuse_grace <duration>
//		}
//
//		login_path        <path>|off
//		refresh_path      <path>|off
//		revoke_path       <path>|off
//		logout_path       <path>|off
//		session_path      <path>|off
//		jwks_path         <path>|off
//		login_per_ip             <per-minute>
//		login_per_account        <per-minute>
//		login_per_account_total  <per-minute>
//		login_per_account_global <per-minute>
//		login_concurrency        <n>
//	}
func (a *Auth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return shared.Block(d, nil, func(name string) error {
		switch name {
		case "login_path":
			return shared.OneString(d, &a.LoginPath)
		case "refresh_path":
			return shared.OneString(d, &a.RefreshPath)
		case "revoke_path":
			return shared.OneString(d, &a.RevokePath)
		case "logout_path":
			return shared.OneString(d, &a.LogoutPath)
		case "session_path":
			return shared.OneString(d, &a.SessionPath)
		case "session_cookie":
			a.SessionCookie = authservice.DefaultSessionCookie
			if d.NextArg() {
				a.SessionCookie = d.Val()
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			return nil
		case "jwks_path":
			return shared.OneString(d, &a.JWKSPath)
		case "login_per_ip":
			return shared.Integer(d, &a.LoginPerIP)
		case "login_per_account":
			return shared.Integer(d, &a.LoginPerAccount)
		case "login_per_account_total":
			return shared.Integer(d, &a.LoginPerAccountTotal)
		case "login_per_account_global":
			return shared.Integer(d, &a.LoginPerAccountGlobal)
		case "login_concurrency":
			return shared.Integer(d, &a.LoginConcurrency)
		case "expose_role_arn":
			return shared.BoolFlag(d, &a.ExposeRoleARN)
		case "client_secret":
			return shared.OneString(d, &a.ClientSecret)
		case "cognito_endpoint":
			return shared.OneString(d, &a.CognitoEndpoint)
		case "role_arn":
			return shared.Pair(d, &a.RoleARNs)
		}
		return a.Identity.unmarshalSubdirective(d)
	})
}

// unmarshalSubdirective parses one identity subdirective.
func (id *Identity) unmarshalSubdirective(d *caddyfile.Dispenser) error {
	switch d.Val() {
	case "cognito":
		args := d.RemainingArgs()
		if len(args) != 2 {
			return d.ArgErr()
		}
		id.Region, id.UserPoolID = args[0], args[1]
	case "issuer":
		return shared.OneString(d, &id.Issuer)
	case "jwks_url":
		return shared.OneString(d, &id.JWKSURL)
	case "client_id":
		return shared.Strings(d, &id.ClientIDs)
	case "token_use":
		return shared.OneString(d, &id.TokenUse)
	case "token_cookie":
		return shared.OneString(d, &id.TokenCookie)
	case "token_query":
		return shared.OneString(d, &id.TokenQuery)
	case "allowed_origins":
		return shared.Strings(d, &id.AllowedOrigins)
	case "algorithms":
		return shared.Strings(d, &id.Algorithms)
	case "leeway":
		return shared.Duration(d, &id.Leeway)
	case "role_claim":
		return shared.OneString(d, &id.RoleClaim)
	case "role_map":
		return shared.Pair(d, &id.RoleMap)
	case "default_role":
		return shared.OneString(d, &id.DefaultRole)
	case "local":
		l := new(LocalIdentity)
		id.Local = l
		return shared.Nested(d, func(name string) error {
			switch name {
			case "users_file":
				return shared.OneString(d, &l.UsersFile)
			case "keys_dir":
				return shared.OneString(d, &l.KeysDir)
			case "issuer":
				return shared.OneString(d, &l.Issuer)
			case "client_id":
				return shared.OneString(d, &l.ClientID)
			case "token_ttl":
				return shared.Duration(d, &l.TokenTTL)
			case "refresh_ttl":
				return shared.Duration(d, &l.RefreshTTL)
			case "reuse_grace":
				return shared.Duration(d, &l.ReuseGrace)
			}
			return d.Errf("unrecognized local subdirective %s", name)
		})
	default:
		return shared.Unrecognized(d)
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Auth)(nil)
