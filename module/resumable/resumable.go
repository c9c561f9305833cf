// Package resumable is the tus 1.0 resumable upload handler,
// `http.handlers.upload_tus` (Caddyfile directive `upload_tus`). The
// protocol and the S3 state live in internal/tus; this package owns the
// Caddy configuration, the S3 client, the request's user and the
// create-only check S3 must pass before uploads are accepted.
package resumable

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/createonly"
	"github.com/caddy-upload-gateway/upload-gateway/internal/janitor"
	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
	"github.com/caddy-upload-gateway/upload-gateway/internal/tus"

	"github.com/caddy-upload-gateway/upload-gateway/module/metricsapp"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves resumable uploads by the tus 1.0 protocol (core,
// creation, creation-with-upload, creation-defer-length, termination,
// expiration, checksum) at the routes it is given: POST creates an upload at
// `<path>/<sealed id>`, and HEAD, PATCH and DELETE go to that URL.
//
// Requests carrying `Upload-Draft-Interop-Version` 3 to 6 are served by
// the IETF draft "Resumable Uploads for HTTP" instead (creation by POST
// or PUT with `104 Upload Resumption Supported`, offset retrieval,
// append, cancellation), on the same uploads, limits and checks; their
// metrics endpoints are `ietf_*`.
//
// Nothing is kept between requests: the upload is an S3 multipart upload,
// bytes short of S3's 5 MiB minimum part wait in a temporary object under
// `temp_prefix`, and writers exclude each other with conditional writes
// (If-None-Match), so every instance sharing the bucket and the secret can
// continue every upload. Until S3 is found to honour If-None-Match
// (probed on first use) creations and PATCHes are refused with 503.
//
// The user comes from `upload_auth` (`{http.auth.user.id}`): an upload
// can only be continued by the user that created it. Requests without a
// user are refused with 401 unless allow_anonymous is set.
type Handler struct {
	// Where uploads are stored: bucket, region, endpoint, credentials and
	// server-side encryption, as in upload_gateway.
	shared.S3Config

	// The prefix of finished uploads' keys (`<prefix><random id>`).
	// Default `tus/`.
	Prefix string `json:"prefix,omitempty"`

	// The reserved prefix of unfinished uploads' temporary objects (tails
	// and locks); it must not overlap prefix. Default
	// `.upload-gateway-tus/`.
	TempPrefix string `json:"temp_prefix,omitempty"`

	// Secret (at least 32 bytes) that seals upload URLs; every instance
	// must share it. Required.
	Secret string `json:"secret,omitempty"`

	// Previous secrets, still accepted after a rotation.
	OldSecrets []string `json:"old_secrets,omitempty"`

	// The largest upload, in bytes (Tus-Max-Size). Default: part_size ×
	// 10000 parts.
	MaxSize int64 `json:"max_size,omitempty"`

	// The size of the parts sent to S3, in bytes; also the memory each
	// PATCH in progress holds. Between 5 MiB and 5 GiB. Default 8 MiB.
	PartSize int64 `json:"part_size,omitempty"`

	// How long an upload may be continued after its creation
	// (Upload-Expires). Default 24h.
	UploadTTL caddy.Duration `json:"upload_ttl,omitempty"`

	// How old a PATCH's lock on an upload must be before another request
	// may take it over (the holder is presumed dead); it must exceed the
	// time to receive and send one part. Default 2m.
	LockTimeout caddy.Duration `json:"lock_timeout,omitempty"`

	// Content types uploads may have, as in upload_gateway ("image/*",
	// "application/pdf"); empty allows all. The S3 object's type is fixed
	// when an upload is created, so the declared type (Upload-Metadata
	// `filetype`, else application/octet-stream) must be allowed at
	// creation, or it is refused with 415 and nothing is created. The
	// first 4 KiB of the upload (all of it if shorter) are sniffed as
	// streamed uploads are, once they have arrived, whatever PATCHes
	// carry them; content that is not allowed or does not match the
	// declared type (an executable declared image/png) is refused with
	// 415 `UNSUPPORTED_MEDIA_TYPE` and the upload is terminated.
	AllowedTypes []string `json:"allowed_types,omitempty"`

	// Accept requests without an authenticated user; their uploads belong
	// to the anonymous user, which anyone can continue with the URL.
	AllowAnonymous bool `json:"allow_anonymous,omitempty"`

	// Do not tag finished uploads. By default, as streamed uploads, each
	// is tagged with its hex SHA-256 (`sha256`) and `size` once complete
	// (needs s3:PutObjectTagging); the SHA-256 state of the parts stored
	// so far is kept between PATCHes in a small object under temp_prefix.
	DisableTags bool `json:"disable_tags,omitempty"`

	// How many unfinished, unexpired uploads one user may have; a
	// creation beyond answers 429 with the JSON code
	// `TOO_MANY_OPEN_UPLOADS`. Counted from S3 (an empty marker per open
	// upload under temp_prefix), so it holds across instances, but
	// creations racing on several instances may each see room for one
	// more. 0 (default): no limit.
	MaxOpenUploads int `json:"max_open_uploads,omitempty"`

	// Bound on the part buffers of all PATCHes in progress together, in
	// bytes: each holds one part_size buffer while it runs. A PATCH that
	// finds the memory in use waits up to memory_wait, then gets 503
	// `SERVER_BUSY` with Retry-After (tus clients retry it). At least
	// part_size. Default 1 GiB.
	MemoryLimit int64 `json:"memory_limit,omitempty"`

	// How long a PATCH may wait for memory when memory_limit is in use.
	// Default 30s.
	MemoryWait caddy.Duration `json:"memory_wait,omitempty"`

	// Removes expired uploads: every interval (default 1h) a background
	// task aborts the multipart uploads under prefix started more than
	// max_age ago, deletes their temporary objects, and deletes every
	// object under temp_prefix last written more than max_age ago (left
	// by crashes). max_age defaults to upload_ttl + 6m (a PATCH begun
	// before the expiry may write for 5 more minutes) and may not be
	// shorter than upload_ttl. Every instance may run it. The sweep
	// reports `upload_gateway_orphan_uploads` (expired uploads found),
	// `upload_gateway_orphan_bytes` (bytes of old temporary objects) and
	// `upload_gateway_orphans_aborted_total` with the prefix label.
	Janitor *shared.JanitorConfig `json:"janitor,omitempty"`

	tus         *tus.Handler
	conditional func(context.Context) bool
	rec         *metricsapp.Recorder
	logger      *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.upload_tus",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets up the handler without network calls.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.S3Config.ApplyDefaults()
	h.S3Config.Expand()
	h.Prefix = cmp.Or(h.Prefix, "tus/")
	h.TempPrefix = cmp.Or(h.TempPrefix, tus.DefaultTempPrefix)
	repl := caddy.NewReplacer()
	secret := repl.ReplaceAll(h.Secret, "")
	if secret == "" {
		return fmt.Errorf("secret is required: a random value of at least %d bytes, the same on every instance", tus.MinSecretLen)
	}
	secrets := [][]byte{[]byte(secret)}
	for _, s := range h.OldSecrets {
		if v := repl.ReplaceAll(s, ""); v != "" {
			secrets = append(secrets, []byte(v))
		}
	}
	rec, err := metricsapp.NewRecorder(ctx, h.logger)
	if err != nil {
		return err
	}
	h.rec = rec
	m := rec.Metrics
	cfg, err := h.AWSConfig(ctx, 16)
	if err != nil {
		return fmt.Errorf("loading AWS configuration: %v", err)
	}
	client := h.NewS3Client(cfg, shared.S3Observer(m))
	enc, err := h.ObjectEncryption()
	if err != nil {
		return fmt.Errorf("configuring encryption: %v", err)
	}
	allow, err := contenttype.NewAllowlist(h.AllowedTypes)
	if err != nil {
		return fmt.Errorf("parsing allowed_types: %v", err)
	}
	h.tus, err = tus.New(client, tus.Config{
		Types:          allow,
		Bucket:         h.Bucket,
		Prefix:         h.Prefix,
		TempPrefix:     h.TempPrefix,
		Encryption:     enc,
		Secrets:        secrets,
		MaxSize:        h.MaxSize,
		PartSize:       h.PartSize,
		TTL:            time.Duration(h.UploadTTL),
		LockTimeout:    time.Duration(h.LockTimeout),
		User:           user,
		Tags:           !h.DisableTags,
		MaxOpenUploads: h.MaxOpenUploads,
		MemoryLimit:    h.MemoryLimit,
		MemoryWait:     time.Duration(h.MemoryWait),
		OnError:        h.logError,
		OnEvent:        noteEvent,
	})
	if err != nil {
		return fmt.Errorf("configuring tus: %v", err)
	}
	if h.Janitor != nil {
		go h.runJanitor(ctx, m)
	}
	h.conditional = h.conditionalCheck(client, enc)
	return nil
}

// conditionalCheck probes on first use, never here, that S3 refuses a
// second PutObject with If-None-Match, which the upload locks rely on.
func (h *Handler) conditionalCheck(client *s3.Client, enc s3limits.Encryption) func(context.Context) bool {
	probe := s3.PutObjectInput{Bucket: aws.String(h.Bucket), ContentType: aws.String("text/plain")}
	probe.ServerSideEncryption, probe.SSEKMSKeyId, probe.BucketKeyEnabled, probe.SSEKMSEncryptionContext = enc.RequestFields()
	d := &createonly.Detector{
		Probe: func(ctx context.Context) (createonly.Support, error) {
			in := probe
			in.Key = aws.String(h.TempPrefix + "create-only-probe-" + uuid.NewString())
			return createonly.Probe(ctx, client, in)
		},
		Report: func(s createonly.Support, err error) {
			switch s {
			case createonly.Supported:
				h.logger.Info("S3 honours If-None-Match: resumable uploads are enabled")
			case createonly.Unsupported:
				h.logger.Error("S3 does not honour If-None-Match: resumable uploads are refused, since concurrent PATCHes could corrupt them", zap.Error(err))
			default:
				h.logger.Warn("could not find out whether S3 honours If-None-Match: resumable uploads are refused until a later probe succeeds", zap.Error(err))
			}
		},
	}
	return d.Supported
}

// runJanitor sweeps expired uploads every interval, the first time after
// a random part of it, until the module is unloaded.
func (h *Handler) runJanitor(ctx caddy.Context, m *metrics.Metrics) {
	interval := cmp.Or(time.Duration(h.Janitor.Interval), time.Hour)
	janitor.Every(ctx, interval, func(ctx context.Context) {
		r := h.tus.Sweep(ctx, time.Duration(h.Janitor.MaxAge), h.Janitor.DryRun)
		m.JanitorSwept(h.Prefix, r.Expired, r.TempBytes, r.Aborted)
		if r.Expired > 0 || r.TempObjects > 0 || r.Err != nil {
			h.logger.Info("resumable upload janitor swept", zap.String("prefix", h.Prefix), zap.Int("expired", r.Expired),
				zap.Int("aborted", r.Aborted), zap.Int("temp_objects", r.TempObjects), zap.Int("temp_deleted", r.TempDeleted),
				zap.Int64("temp_bytes", r.TempBytes), zap.Bool("dry_run", h.Janitor.DryRun), zap.NamedError("sweep_error", r.Err))
		}
	})
}

// user is the id upload_auth set, "" for anonymous.
func user(r *http.Request) string {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return ""
	}
	id, _ := repl.GetString("http.auth.user.id")
	return id
}

func (h *Handler) logError(r *http.Request, err error) {
	h.logger.Error("resumable upload failed", zap.String("method", r.Method), zap.Error(err))
}

// outcomeKey is the request context key of the request's outcome, which
// the tus handler's events fill in.
type outcomeKey struct{}

// noteEvent puts an upload's creation, completion or termination into the
// request's outcome, which ServeHTTP records (and audits) once.
func noteEvent(r *http.Request, e tus.Event) {
	o, ok := r.Context().Value(outcomeKey{}).(*metrics.Outcome)
	if !ok {
		return
	}
	o.Action = map[string]string{tus.EventCreated: "tus_create", tus.EventCompleted: "upload", tus.EventTerminated: "delete"}[e.Action]
	o.Key, o.UploadID, o.Bytes = e.Key, e.UploadID, max(e.Size, 0)
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if err := h.S3Config.Validate(); err != nil {
		return err
	}
	if h.PartSize != 0 && (h.PartSize < s3limits.MinPartSize || h.PartSize > s3limits.MaxPartSize) {
		return fmt.Errorf("part_size %d is outside S3's limits [%d, %d]", h.PartSize, s3limits.MinPartSize, s3limits.MaxPartSize)
	}
	if h.MaxSize < 0 || h.UploadTTL < 0 || h.LockTimeout < 0 || h.MaxOpenUploads < 0 || h.MemoryWait < 0 {
		return fmt.Errorf("max_size, upload_ttl, lock_timeout, max_open_uploads and memory_wait must not be negative")
	}
	if part := cmp.Or(h.PartSize, tus.DefaultPartSize); h.MemoryLimit != 0 && h.MemoryLimit < part {
		return fmt.Errorf("memory_limit %d is below one part (part_size %d)", h.MemoryLimit, part)
	}
	if j := h.Janitor; j != nil {
		ttl := cmp.Or(time.Duration(h.UploadTTL), tus.DefaultTTL)
		if j.MaxAge != 0 && time.Duration(j.MaxAge) < ttl {
			return fmt.Errorf("janitor max_age %s must not be shorter than upload_ttl %s, or it removes uploads clients may still continue", time.Duration(j.MaxAge), ttl)
		}
		if j.Interval < 0 {
			return fmt.Errorf("janitor interval must not be negative")
		}
	}
	return nil
}

// endpoints are the request metrics' endpoint labels, per method, of tus
// requests and (ietfEndpoints) of the IETF draft's.
var (
	endpoints = map[string]string{
		http.MethodOptions: "tus_options", http.MethodPost: "tus_create", http.MethodHead: "tus_head",
		http.MethodPatch: "tus_patch", http.MethodDelete: "tus_delete",
	}
	ietfEndpoints = map[string]string{
		http.MethodOptions: "ietf_options", http.MethodPost: "ietf_create", http.MethodPut: "ietf_create",
		http.MethodHead: "ietf_head", http.MethodPatch: "ietf_append", http.MethodDelete: "ietf_delete",
	}
)

// ServeHTTP serves the tus protocol; it never calls next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	start := time.Now()
	table, other := endpoints, "tus_other"
	if tus.InteropVersion(r) != "" {
		table, other = ietfEndpoints, "ietf_other"
	}
	o := &metrics.Outcome{Route: h.Prefix, Endpoint: cmp.Or(table[r.Method], other)}
	r = r.WithContext(context.WithValue(r.Context(), outcomeKey{}, o))
	rec := caddyhttp.NewResponseRecorder(w, nil, nil)
	err := h.serve(rec, r)
	o.Status = rec.Status()
	if he, ok := errors.AsType[caddyhttp.HandlerError](err); ok {
		o.Status = he.StatusCode
	}
	o.Duration, o.Result = time.Since(start), metrics.ResultOf(o.Status)
	h.rec.Record(r, *o)
	return err
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodOptions {
		if !h.AllowAnonymous && user(r) == "" {
			if tus.InteropVersion(r) == "" {
				w.Header().Set("Tus-Resumable", tus.Version)
			}
			return caddyhttp.Error(http.StatusUnauthorized, fmt.Errorf("resumable uploads need an authenticated user"))
		}
		if (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch) && !h.conditional(r.Context()) {
			w.Header().Set("Retry-After", "60")
			return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("S3 is not known to honour If-None-Match: resumable uploads are refused"))
		}
	}
	h.tus.ServeHTTP(w, r)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
