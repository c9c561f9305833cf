package shared

import (
	"cmp"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-upload-gateway/upload-gateway/internal/janitor"
	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"
)

// DefaultJanitorMaxAge exceeds upload_api's default upload token lifetime
// (24h), so the janitor never aborts an upload a client may still finish.
const DefaultJanitorMaxAge = 25 * time.Hour

// JanitorConfig turns on the orphan janitor of a handler: a background task
// that aborts multipart uploads under the handler's prefix that were started
// longer ago than max_age (left by a crashed instance or an S3 outage longer
// than the abort retries), and reports `upload_gateway_orphan_uploads`,
// `upload_gateway_orphan_bytes` and `upload_gateway_orphans_aborted_total`.
// Every instance may run it: sweeps are safe to overlap.
type JanitorConfig struct {
	// Uploads started longer ago than this are orphans. Default 25h; at
	// least 1m, and longer than upload_api's upload_ttl.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// Time between sweeps. Default 1h.
	Interval caddy.Duration `json:"interval,omitempty"`

	// Count orphans without aborting them.
	DryRun bool `json:"dry_run,omitempty"`
}

// Start runs the janitor over prefix until ctx (the module's lifetime) ends.
// It makes no network call before returning.
func (c *JanitorConfig) Start(ctx caddy.Context, api janitor.API, bucket, prefix string, m *metrics.Metrics, logger *zap.Logger) error {
	j, err := janitor.New(api, janitor.Options{
		Bucket:   bucket,
		Prefixes: []string{prefix},
		MaxAge:   cmp.Or(time.Duration(c.MaxAge), DefaultJanitorMaxAge),
		Interval: time.Duration(c.Interval),
		DryRun:   c.DryRun,
		OnSweep: func(r janitor.Report) {
			m.JanitorSwept(prefix, r.Found, r.OrphanBytes, r.Aborted)
			if r.Found > 0 || r.Err != nil {
				logger.Info("orphan janitor swept", zap.String("prefix", prefix), zap.Int("found", r.Found),
					zap.Int("aborted", r.Aborted), zap.Int("failed", r.Failed), zap.Int64("bytes", r.OrphanBytes),
					zap.Bool("dry_run", c.DryRun), zap.NamedError("sweep_error", r.Err))
			}
		},
	})
	if err != nil {
		return fmt.Errorf("configuring the janitor: %v", err)
	}
	go j.Run(ctx) // ends with the module's context (config unload)
	return nil
}

// UnmarshalJanitor parses
//
//	janitor {
//		max_age  <duration>
//		interval <duration>
//		dry_run
//	}
func UnmarshalJanitor(d *caddyfile.Dispenser) (*JanitorConfig, error) {
	c := new(JanitorConfig)
	return c, Nested(d, func(name string) error {
		switch name {
		case "max_age":
			return Duration(d, &c.MaxAge)
		case "interval":
			return Duration(d, &c.Interval)
		case "dry_run":
			return BoolFlag(d, &c.DryRun)
		}
		return d.Errf("unrecognized janitor option %s", name)
	})
}
