// Package module plugs the upload gateway into Caddy when imported. It only
// imports the products, each a package of Caddy glue (module
// registration, JSON and Caddyfile configuration, provisioning, handlers)
// over the Caddy-free packages in internal/:
//
//   - module/gateway: the streaming upload handler
//     (`http.handlers.upload_gateway`, directive `upload_gateway`).
//   - module/files: the presigned file API (`http.handlers.upload_api`,
//     directive `upload_api`).
//   - module/identity: authentication (`http.handlers.upload_auth`, the
//     `http.authentication.providers.upload_auth` provider, directive
//     `upload_auth`) and the `upload-gateway-rotate-key` command.
//   - module/resumable: resumable uploads by the tus 1.0 protocol
//     (`http.handlers.upload_tus`, directive `upload_tus`).
//   - module/metricsapp: the `upload_gateway_metrics` app exporting to
//     CloudWatch and EMF files.
//   - module/ops: the `upload_health` probe handler
//     (`http.handlers.upload_health`) and the `upload-gateway check`
//     preflight command.
//   - module/progress: upload progress for browsers
//     (`http.handlers.upload_progress`, directive `upload_progress`),
//     compatible with nginx-upload-progress-module.
//   - module/page: the upload page, Uppy's Dashboard embedded in the
//     binary (`http.handlers.upload_page`, directive `upload_page`).
//
// module/shared holds what they have in common: S3 and AWS configuration,
// SDK call metrics, the janitor's settings, the audit log and Caddyfile
// helpers.
package module

import (
	// Each registers its Caddy modules, Caddyfile directives and commands.
	_ "github.com/caddy-upload-gateway/upload-gateway/module/files"
	_ "github.com/caddy-upload-gateway/upload-gateway/module/gateway"
	_ "github.com/caddy-upload-gateway/upload-gateway/module/identity"
	_ "github.com/caddy-upload-gateway/upload-gateway/module/metricsapp"
	_ "github.com/caddy-upload-gateway/upload-gateway/module/ops"
	_ "github.com/caddy-upload-gateway/upload-gateway/module/page"
	_ "github.com/caddy-upload-gateway/upload-gateway/module/progress"
	_ "github.com/caddy-upload-gateway/upload-gateway/module/resumable"
)
