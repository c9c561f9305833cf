// Package shared holds what the upload gateway's Caddy modules have in
// common: the S3 storage settings ([S3Config]) and the S3 client built from
// them, AWS SDK configuration ([LoadAWSConfig]) and SDK call metrics, the
// orphan janitor's settings ([JanitorConfig]), the audit log ([Audit]) and
// the Caddyfile parsing helpers. It registers no module; the products live
// in module/gateway, module/files, module/identity and module/metricsapp.
package shared
