// Package uploadgateway plugs the upload gateway's modules into Caddy when
// imported. It exists so that the module path itself can be given to xcaddy:
//
//	xcaddy build --with github.com/caddy-upload-gateway/upload-gateway
//
// The modules live in the packages under module/, one per product; see
// README.md.
package uploadgateway

import (
	// registers http.handlers.upload_gateway and the Caddyfile directives
	_ "github.com/caddy-upload-gateway/upload-gateway/module"
)
