// Package ops holds the Caddy glue for running the upload gateway in
// production: the `upload_health` handler (liveness and readiness probes
// for load balancers and Kubernetes) and the `caddy upload-gateway check`
// command (the preflight check of a config's S3, KMS and STS
// permissions). The logic is in internal/readiness and internal/preflight.
package ops

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/readiness"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	caddy.RegisterModule(Health{})
}

// Probe kinds.
const (
	ProbeLive  = "live"
	ProbeReady = "ready"
)

// Health answers load balancer and Kubernetes probes. With `probe live`
// (the default) it answers `200 ok` for as long as the process serves
// HTTP: use it for liveness. With `probe ready` it answers 200 only while
// the bucket answers and, with SSE-KMS, an upload can be created with the
// KMS key; otherwise 503 with the reason. The answer is cached for
// `cache_for`, so probes from many sources cost one S3 check per period.
//
// The readiness check needs s3:ListBucket on the bucket, s3:PutObject and
// s3:AbortMultipartUpload on `<prefix>.upload-gateway-ready/*`, and
// kms:GenerateDataKey on the key: the same permissions uploads need.
type Health struct {
	// `live` (default) or `ready`.
	Probe string `json:"probe,omitempty"`

	// Where uploads are stored, for `probe ready`: bucket, region,
	// endpoint, credentials and server-side encryption, as in
	// upload_gateway.
	shared.S3Config

	// The key prefix the readiness upload is created under; it should be
	// the prefix the gateway's role may write. Default `uploads/`.
	Prefix string `json:"prefix,omitempty"`

	// How long a readiness answer is reused. Default 5s.
	CacheFor caddy.Duration `json:"cache_for,omitempty"`

	// How long one readiness check may take. Default 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	checker *readiness.Checker
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Health) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.upload_health",
		New: func() caddy.Module { return new(Health) },
	}
}

// Provision builds the readiness checker without network calls.
func (h *Health) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.Probe = cmp.Or(h.Probe, ProbeLive)
	if h.Probe != ProbeReady {
		return nil
	}
	h.S3Config.ApplyDefaults()
	h.S3Config.Expand()
	h.Prefix = cmp.Or(h.Prefix, "uploads/")
	cfg, err := h.AWSConfig(ctx, 1)
	if err != nil {
		return fmt.Errorf("loading AWS configuration: %v", err)
	}
	enc, err := h.ObjectEncryption()
	if err != nil {
		return err
	}
	h.checker = &readiness.Checker{
		S3:         h.NewS3Client(cfg, nil),
		Bucket:     h.Bucket,
		Key:        h.Prefix + ".upload-gateway-ready/probe",
		Encryption: enc,
		CacheFor:   time.Duration(h.CacheFor),
		Timeout:    time.Duration(h.Timeout),
	}
	return nil
}

// Validate checks the configuration.
func (h *Health) Validate() error {
	switch h.Probe {
	case ProbeLive:
		if h.Bucket != "" {
			return fmt.Errorf("storage settings need probe ready")
		}
		return nil
	case ProbeReady:
		return h.S3Config.Validate()
	}
	return fmt.Errorf("unknown probe %q (want live or ready)", h.Probe)
}

// ServeHTTP answers the probe; it never calls next.
func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("probes are GET or HEAD"))
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	status, body := http.StatusOK, map[string]string{"status": "ok"}
	if h.checker != nil {
		body["status"] = "ready"
		if err := h.checker.Ready(r.Context()); err != nil {
			if c := h.logger.Check(zap.WarnLevel, "not ready"); c != nil {
				c.Write(zap.Error(err))
			}
			status, body = http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()}
		}
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Health)(nil)
	_ caddy.Validator             = (*Health)(nil)
	_ caddyhttp.MiddlewareHandler = (*Health)(nil)
)
