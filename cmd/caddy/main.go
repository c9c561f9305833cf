// Command caddy is Caddy with the upload gateway modules plugged in.
//
//	go run ./cmd/caddy run --config caddyfiles/dev.Caddyfile
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-upload-gateway/upload-gateway/module"
)

func main() {
	caddycmd.Main()
}
