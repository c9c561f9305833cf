// Package gateway is the streaming upload handler,
// `http.handlers.upload_gateway` (Caddyfile directive `upload_gateway`): it
// reads multipart forms and raw bodies as they arrive and streams every file
// to S3, under per-request and per-client limits, then answers with JSON
// or passes the request on with the files replaced by fields. It owns the
// handler's configuration (gateway.go, caddyfile.go) and the glue to the
// packages that do the work: internal/uploadreq runs one request (access,
// storing, passing on, rolling back, mapping failures to HTTP answers),
// internal/s3stream sizes parts and memory, internal/refusal answers
// refused forms as on_error says.
package gateway

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/bodyrate"
	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
	"github.com/caddy-upload-gateway/upload-gateway/internal/inflight"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/passfields"
	"github.com/caddy-upload-gateway/upload-gateway/internal/refusal"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"
	"github.com/caddy-upload-gateway/upload-gateway/internal/uploadreq"

	"github.com/caddy-upload-gateway/upload-gateway/module/metricsapp"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	caddy.RegisterModule(Gateway{})
}

// What a matched route does with a body that is not multipart/form-data
// (non_multipart).
const (
	// NonMultipartStore stores the body as one object (the default).
	NonMultipartStore = "store"
	// NonMultipartPass hands the request to the next handler untouched;
	// nothing is stored.
	NonMultipartPass = "pass"
	// NonMultipartReject answers 415 UNSUPPORTED_MEDIA_TYPE.
	NonMultipartReject = "reject"
)

// Output modes.
const (
	// OutputRespond answers the client with JSON describing the stored files.
	OutputRespond = "respond"
	// OutputPass forwards the request to the next handler with every file
	// replaced by fields describing the stored object (the
	// nginx-upload-module model).
	OutputPass = "pass"
)

// Gateway is an HTTP handler that streams request bodies into S3 objects
// encrypted with SSE-KMS. It accepts `multipart/form-data` forms, where every
// file part becomes its own object and plain fields are kept, and raw bodies
// (PUT or POST of any other type), which become one object.
//
// With `output respond` (the default) the client gets a JSON description of the
// stored files. With `output pass`, the request continues to the next handler
// (typically `reverse_proxy` to a legacy application) with each file part
// replaced by fields describing the stored object; when that handler fails or
// answers with a status listed in `rollback_on`, the objects are deleted again.
//
// Only POST and PUT requests are handled; other methods go to the next handler.
//
// Key templates and metadata values may use any Caddy placeholder plus these,
// which are set for each file before its key is built:
//
// Placeholder | Description
// ------------|-------------
// `{upload.uuid}` | A random UUID for this file
// `{upload.filename}` | The client's file name, sanitised to one safe key segment
// `{upload.ext}` | The lowercased extension of the file name with its dot, or empty
// `{upload.field}` | The form field name (empty for raw bodies)
// `{upload.field_base}` | The form field name before its first `[]` (`docs` for `docs[]`)
// `{upload.index}` | The 0-based index of the file among the files of its form field name
// `{upload.year}`, `{upload.month}`, `{upload.day}` | Today's date in UTC
// `{upload.date}` | `{upload.year}/{upload.month}/{upload.day}`
//
// `pass_field` values may also use, per stored file:
//
// Placeholder | Description
// ------------|-------------
// `{upload.key}` | The object key
// `{upload.bucket}` | The bucket
// `{upload.size}` | The object size in bytes
// `{upload.content_type}` | The stored content type
// `{upload.checksum}` | The object's checksum as S3 stores it (base64; for `checksum` CRC32C, CRC32 or CRC64NVME the CRC of the whole object, which S3 verified)
// `{upload.checksum_algorithm}` | Its algorithm, e.g. `CRC32C`
// `{upload.sha256}` | Hex SHA-256 of the object, only with `hash sha256`
// `{upload.etag}` | The object's ETag
// `{upload.version_id}` | The object's version id, if the bucket is versioned
// `{upload.name}` | The client's original file name, unsanitised
// `{upload.md5}` | Hex MD5 of the file, computed only when a pass field uses it
// `{upload.crc32}` | CRC32 (IEEE) of the file as 8 hex digits, computed only when a pass field uses it
//
// A pass_field name of the form `{upload.field}.<attr>` (the defaults) is
// named by pass_field_style: `avatar.key` (dotted) or `avatar[key]`
// (nested); a field name with brackets always gets the nested form with
// its first `[]` numbered, `docs[]` → `docs[0][key]`, `docs[1][key]`, …, so
// that PHP, Rack, Werkzeug and Express read arrays of files as arrays.
//
// After the request body has been stored, these are set for later handlers:
//
// Placeholder | Description
// ------------|-------------
// `{http.upload_gateway.files}` | Number of files stored
// `{http.upload_gateway.key}` | Key of the first file stored
// `{http.upload_gateway.keys}` | Comma-separated keys of all files stored
// `{http.upload_gateway.bucket}` | The bucket
// `{http.upload_gateway.bytes}` | Total bytes stored
// `{http.upload_gateway.upload_id}` | Multipart upload id of the first file, if any
// `{http.upload_gateway.error}` | The error message, when the upload failed
// `{http.upload_gateway.error_code}` | The error code, when the upload failed
// `{http.upload_gateway.error_status}` | The HTTP status of the refusal, in on_error
type Gateway struct {
	// Where and how objects are stored: bucket, region, endpoint,
	// credentials and server-side encryption.
	shared.S3Config

	// The smallest multipart part size in bytes; grown automatically so
	// objects fit in 10,000 parts. Default 16 MiB, at least 5 MiB.
	PartSize int64 `json:"part_size,omitempty"`

	// How many parts of one file are sent at once. Default 4. A part is
	// never larger than memory_limit / (concurrency + 1), so one upload holds
	// at most memory_limit.
	Concurrency int `json:"concurrency,omitempty"`

	// The checksum every part carries for S3 to verify: `CRC32C` (default),
	// `CRC32`, `CRC64NVME`, `SHA1` or `SHA256`. With a CRC the gateway also
	// sends the CRC of the whole object, computed while reading, and S3
	// verifies it on completion and stores it with the object (checksum
	// type FULL_OBJECT); with SHA1 or SHA256 S3 keeps a checksum of the
	// parts' checksums (COMPOSITE). CRC32C and CRC32 cost the gateway about
	// 0.1 CPU-seconds per GiB, CRC64NVME, SHA1 and SHA256 several times more.
	Checksum string `json:"checksum,omitempty"`

	// A full-object digest computed besides S3's checksums: `sha256` (the
	// SHA-256 of every file, as `{upload.sha256}`, the `sha256` response and
	// pass field, the `sha256` object tag and, for objects stored with one
	// PutObject, metadata) or `none` (default). It costs about 0.6-0.8
	// CPU-seconds per GiB, more than the rest of the upload; S3 does not
	// need it to verify the object.
	Hash string `json:"hash,omitempty"`

	// Bound on every S3 request. Default 2m.
	S3Timeout caddy.Duration `json:"s3_timeout,omitempty"`

	// How long the abort of a failed multipart upload (and the deletion of a
	// rolled-back object) is retried while S3 is unreachable. Default 2m.
	AbortTimeout caddy.Duration `json:"abort_timeout,omitempty"`

	// Bound on the memory of all uploads of this handler together, in bytes:
	// part buffers, plain form fields and part headers, taken in small steps
	// as bytes arrive. Uploads wait for memory beyond it (see memory_wait).
	// It also caps the part size at memory_limit / (concurrency + 1), and so
	// the largest file at 10,000 such parts. Default 1 GiB.
	MemoryLimit int64 `json:"memory_limit,omitempty"`

	// How long an upload may wait for memory when memory_limit is
	// exhausted; after that it fails with 503 and Retry-After. Default 30s.
	MemoryWait caddy.Duration `json:"memory_wait,omitempty"`

	// How long reading the request body may stall. The allowance is used up
	// only while the gateway waits for body bytes, and every byte received
	// earns 1/min_rate seconds back (up to read_timeout again). A client
	// that runs out gets 408 and its upload is aborted. The server's own
	// timeouts (`servers { timeouts { … } }`) still apply. Default 30s.
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`

	// The slowest sustained body transfer rate accepted, in bytes per
	// second (see read_timeout). Default 8 KiB/s; -1 checks stalls only.
	MinRate int64 `json:"min_rate,omitempty"`

	// Most uploads one client may have in progress at once on this handler:
	// per user (`{http.auth.user.id}`) or, for anonymous requests, per client
	// IP (IPv6 per /64; behind a proxy set the server's `trusted_proxies`).
	// More get 429 with Retry-After. Default 10; -1 for no cap.
	MaxUploadsPerClient int `json:"max_uploads_per_client,omitempty"`

	// Bound on the memory the uploads of one client (counted as for
	// max_uploads_per_client) hold together, in bytes: part buffers, form
	// fields and part headers. Beyond it that client's uploads wait (see
	// memory_wait) while other clients proceed. At least two parts of
	// memory_limit / (concurrency + 1). Default memory_limit / 4, or those
	// two parts when larger; -1 for no bound.
	MaxMemoryPerClient int64 `json:"max_memory_per_client,omitempty"`

	// Do not store `size`, the full-object checksum (a tag named after the
	// algorithm, e.g. `crc32c`) and, with `hash sha256`, `sha256` as object
	// tags.
	DisableTags bool `json:"disable_tags,omitempty"`

	// The key prefix no object key may escape. Default `uploads/`.
	Prefix string `json:"prefix,omitempty"`

	// The object key template, below the prefix. Default
	// `{upload.uuid}{upload.ext}`.
	Key string `json:"key,omitempty"`

	// Largest file accepted, in bytes. Default: S3's 5 TiB limit.
	MaxFileSize int64 `json:"max_file_size,omitempty"`

	// Largest request body accepted, in bytes. Default: no limit beyond
	// max_file_size per file.
	MaxRequestSize int64 `json:"max_request_size,omitempty"`

	// Most files in one form; more are refused (413) before the first file
	// beyond the limit is stored. Default 100.
	MaxFiles int `json:"max_files,omitempty"`

	// Most plain fields in one form. Default 1000.
	MaxFields int `json:"max_fields,omitempty"`

	// Largest plain field value, in bytes. Default 1 MiB.
	MaxFieldSize int64 `json:"max_field_size,omitempty"`

	// Largest total of all plain fields (headers and values) and the
	// fields written in pass mode, in bytes. Default 10 MiB.
	MaxFormSize int64 `json:"max_form_size,omitempty"`

	// Content types accepted, checked against the first bytes of each file
	// as well as the declared type: `image/*`, `application/pdf`, ….
	// Default: everything.
	AllowedTypes []string `json:"allowed_types,omitempty"`

	// The request header naming the file of a raw body. Default
	// `X-File-Name`. Without it, the file name is taken from the
	// Content-Disposition header, else the last path segment.
	FilenameHeader string `json:"filename_header,omitempty"`

	// Extra user metadata stored with every object: name → template. The
	// gateway's own fields (original-name, sha256, uploaded-by, user-role,
	// field, gateway-write-id) cannot be overridden. All user metadata
	// together must fit S3's 2 KiB, with room for sha256 and
	// gateway-write-id, else 400.
	Metadata map[string]string `json:"metadata,omitempty"`

	// Accept client metadata from `X-Upload-Meta-<name>` request headers.
	// The gateway's own fields always win.
	ClientMetadata bool `json:"client_metadata,omitempty"`

	// `respond` (default) or `pass`.
	Output string `json:"output,omitempty"`

	// In pass mode, the fields that replace each file part, in order. Names
	// and values are templates. Default: `{upload.field}.name`, `.key`,
	// `.bucket`, `.size`, `.content_type`, `.sha256` (empty without `hash
	// sha256`), `.etag`. Add `{upload.checksum}` and
	// `{upload.checksum_algorithm}` for the object's S3 checksum.
	PassFields []PassField `json:"pass_fields,omitempty"`

	// In pass mode, how a pass field named `{upload.field}.<attr>` is named:
	// `dotted` (default) writes `avatar.key`, `nested` writes `avatar[key]`
	// (PHP `$_POST['avatar']['key']`, Rack `params["avatar"]["key"]`,
	// Express `req.body.avatar.key`). Field names with brackets (`docs[]`,
	// `user[photo]`) are always nested, their first `[]` numbered per file:
	// `docs[0][key]`. With `nested`, plain fields such as `first_name` or
	// `api_key` are not reserved for the gateway.
	PassFieldStyle string `json:"pass_field_style,omitempty"`

	// In pass mode, regular expressions (RE2, unanchored) selecting the
	// plain fields forwarded to the next handler, like nginx's
	// upload_pass_form_field: a field is forwarded when its name matches
	// any of them. Default: every field.
	PassFormFields []string `json:"pass_form_fields,omitempty"`

	// What a matched POST or PUT whose body is not multipart/form-data
	// does: `store` (default) stores it as one object, `pass` hands the
	// request untouched to the next handler (nothing is stored, no role is
	// checked here), `reject` answers 415.
	NonMultipart string `json:"non_multipart,omitempty"`

	// In pass mode, also write a signature field for each file: the
	// HMAC-SHA256 of the file's form field name and the values of its
	// pass_fields, so that the application can tell the gateway's fields
	// from fields a client sent. Default: none.
	PassSignature *PassSignature `json:"pass_signature,omitempty"`

	// In pass mode, the upstream statuses that roll back (delete) the stored
	// objects. 4 and 5 stand for all 4xx and 5xx. Default [4, 5].
	RollbackOn []int `json:"rollback_on,omitempty"`

	// Roles that may upload: `admin`, `uploader`, `viewer`. The role comes
	// from `{http.auth.user.role}` (set by `upload_auth`); a user with
	// another role, or none, gets 403. Default: `admin` and `uploader`.
	AllowedRoles []string `json:"allowed_roles,omitempty"`

	// Accept uploads from requests without an identity (no
	// `{http.auth.user.id}`, e.g. no `upload_auth` in front). Without it
	// they get 401. Requests with an identity are still checked against
	// allowed_roles. Default: off.
	AllowAnonymous bool `json:"allow_anonymous,omitempty"`

	// The name of this upload route in metrics. Default: the prefix.
	Route string `json:"route,omitempty"`

	// Abort multipart uploads under the prefix left behind by crashed
	// instances. Default: off.
	Janitor *shared.JanitorConfig `json:"janitor,omitempty"`

	// Return errors to Caddy (for `handle_errors` routes) instead of writing
	// the JSON error body.
	HandleErrors bool `json:"handle_errors,omitempty"`

	// What a browser gets when a form is refused (401, 403, 413, 415 by
	// default): a 303 redirect, or the application the request with error
	// fields instead of the form. Default: the JSON error (or Caddy's error
	// handling with handle_errors).
	OnError *refusal.Policy `json:"on_error,omitempty"`

	flow      *uploadreq.Config
	uploader  *s3stream.Uploader
	budget    *s3stream.BufferBudget
	perClient *inflight.Limiter
	rec       *metricsapp.Recorder
	logger    *zap.Logger
}

// PassSignature is the signature field written for each file in pass mode.
// Its value is the lower-case hex HMAC-SHA256, keyed with Secret, of the
// file's form field name followed by the values of the file's pass_fields
// in their configured order, each written as its length in bytes, ":", the
// value and "\n".
type PassSignature struct {
	// The field name template, e.g. `{upload.field}.signature`.
	Field string `json:"field"`
	// The HMAC key: at least 32 bytes after placeholders such as
	// `{env.PASS_SECRET}` are expanded.
	Secret string `json:"secret"`
}

// PassField is one field written in place of a file part in pass mode.
type PassField struct {
	// The field name template, e.g. `{upload.field}.key`.
	Name string `json:"name"`
	// The value template, e.g. `{upload.key}`.
	Value string `json:"value"`
}

// CaddyModule returns the Caddy module information.
func (Gateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.upload_gateway",
		New: func() caddy.Module { return new(Gateway) },
	}
}

// Provision sets up the handler. It makes no network calls.
func (g *Gateway) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	g.ApplyDefaults()

	g.S3Config.Expand()
	g.flow = g.flowConfig()
	if err := g.flow.Prepare(); err != nil {
		return err
	}

	rec, err := metricsapp.NewRecorder(ctx, g.logger)
	if err != nil {
		return err
	}
	g.rec = rec
	m := rec.Metrics

	cfg, err := g.AWSConfig(ctx, g.Concurrency)
	if err != nil {
		return fmt.Errorf("loading AWS configuration: %v", err)
	}
	client := g.NewS3Client(cfg, shared.S3Observer(m))
	checksum, _ := s3stream.ParseChecksum(g.Checksum) // Validate checks it
	enc, err := g.ObjectEncryption()
	if err != nil {
		return fmt.Errorf("configuring encryption: %v", err)
	}
	g.budget = s3stream.NewBufferBudget(g.MemoryLimit, time.Duration(g.MemoryWait))
	g.budget.SetClientLimit(g.sizing().ClientMemory())
	g.perClient = inflight.New(g.MaxUploadsPerClient)
	g.uploader = s3stream.New(client, s3stream.Options{
		PartSize:     g.PartSize,
		Concurrency:  g.Concurrency,
		Checksum:     checksum,
		SHA256:       g.Hash == HashSHA256,
		Encryption:   enc,
		Tags:         !g.DisableTags,
		CallTimeout:  time.Duration(g.S3Timeout),
		AbortTimeout: time.Duration(g.AbortTimeout),
		Budget:       g.budget,
		OnAbortFailure: func(bucket, key, uploadID string, err error) {
			g.logger.Error("multipart upload could not be aborted; it is left for the bucket's lifecycle rule or janitor",
				zap.String("bucket", bucket), zap.String("key", key), zap.String("upload_id", uploadID), zap.Error(err))
		},
	})
	g.flow.Uploader = g.uploader
	if g.Janitor != nil {
		if err := g.Janitor.Start(ctx, client, g.Bucket, g.Prefix, m, g.logger); err != nil {
			return err
		}
	}
	if g.Encryption == shared.EncryptionNone {
		g.logger.Warn("UNENCRYPTED: objects are written without server-side encryption")
	}
	return nil
}

// ApplyDefaults fills in the defaults of unset fields; Provision calls it.
func (g *Gateway) ApplyDefaults() {
	g.S3Config.ApplyDefaults()
	g.PartSize = cmp.Or(g.PartSize, s3stream.DefaultPartSize)
	g.Concurrency = cmp.Or(g.Concurrency, s3stream.DefaultConcurrency)
	g.Checksum = cmp.Or(g.Checksum, string(types.ChecksumAlgorithmCrc32c))
	g.Hash = cmp.Or(g.Hash, HashNone)
	g.MemoryLimit = cmp.Or(g.MemoryLimit, 1<<30)
	g.MemoryWait = cmp.Or(g.MemoryWait, caddy.Duration(DefaultMemoryWait))
	g.ReadTimeout = cmp.Or(g.ReadTimeout, caddy.Duration(DefaultReadTimeout))
	g.MinRate = cmp.Or(g.MinRate, DefaultMinRate)
	g.MaxUploadsPerClient = cmp.Or(g.MaxUploadsPerClient, DefaultMaxUploadsPerClient)
	g.MaxFiles = cmp.Or(g.MaxFiles, DefaultMaxFiles)
	g.Prefix = cmp.Or(g.Prefix, "uploads/")
	g.Key = cmp.Or(g.Key, "{upload.uuid}{upload.ext}")
	g.FilenameHeader = cmp.Or(g.FilenameHeader, "X-File-Name")
	g.Output = cmp.Or(g.Output, OutputRespond)
	g.PassFieldStyle = cmp.Or(g.PassFieldStyle, passfields.StyleDotted)
	g.NonMultipart = cmp.Or(g.NonMultipart, NonMultipartStore)
	g.Route = cmp.Or(g.Route, g.Prefix)
	if g.RollbackOn == nil {
		g.RollbackOn = []int{4, 5}
	}
}

// Values of Hash.
const (
	HashNone   = "none"
	HashSHA256 = "sha256"
)

// Validate checks the configuration.
func (g *Gateway) Validate() error {
	if err := g.S3Config.Validate(); err != nil {
		return err
	}
	if err := g.sizing().Validate(); err != nil {
		return err
	}
	if _, err := s3stream.ParseChecksum(g.Checksum); err != nil {
		return err
	}
	if g.Hash != HashNone && g.Hash != HashSHA256 {
		return fmt.Errorf("unknown hash %q: use sha256 or none", g.Hash)
	}
	if g.MaxRequestSize < 0 {
		return fmt.Errorf("limits must not be negative")
	}
	switch g.Output {
	case OutputRespond, OutputPass:
	default:
		return fmt.Errorf("unknown output %q (want respond or pass)", g.Output)
	}
	if g.OnError != nil {
		if err := g.OnError.Validate(); err != nil {
			return err
		}
	}
	if ps := g.PassSignature; ps != nil && ps.Field == "" {
		return fmt.Errorf("pass_signature: the field has no name")
	}
	switch g.NonMultipart {
	case "", NonMultipartStore, NonMultipartPass, NonMultipartReject:
	default:
		return fmt.Errorf("unknown non_multipart %q (want store, pass or reject)", g.NonMultipart)
	}
	return g.flowConfig().Validate()
}

// sizing is how parts and memory are sized.
func (g *Gateway) sizing() s3stream.Sizing {
	return s3stream.Sizing{PartSize: g.PartSize, Concurrency: g.Concurrency, MemoryLimit: g.MemoryLimit,
		MaxFileSize: g.MaxFileSize, MaxMemoryPerClient: g.MaxMemoryPerClient}
}

// Cleanup waits briefly for aborts still being retried; they go on in the
// background (with their own contexts) if they take longer.
func (g *Gateway) Cleanup() error {
	if g.uploader != nil {
		g.uploader.Wait(5 * time.Second)
	}
	return nil
}

// ServeHTTP stores the request's files in S3, then responds or passes the
// rewritten request on. The request's outcome is recorded once, when it
// returns (or panics).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		return next.ServeHTTP(w, r)
	}
	if g.NonMultipart == NonMultipartPass && !uploadreq.IsMultipart(r) {
		return next.ServeHTTP(w, r)
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	q := g.flow.New(r, replacer{repl})
	record := g.rec.Upload(r.ContentLength)
	defer func() { record(r, q.Outcome()) }()
	if err := q.Authorize(); err != nil {
		return g.fail(w, r, next, repl, q, err)
	}
	if g.NonMultipart == NonMultipartReject && !uploadreq.IsMultipart(r) {
		return g.fail(w, r, next, repl, q, fmt.Errorf("%w (non_multipart reject)", formstream.ErrNotMultipart))
	}
	client := q.Client(shared.ClientIP(r))
	release, ok := g.perClient.Acquire(client)
	if !ok {
		return g.fail(w, r, next, repl, q, uploadreq.ErrTooManyUploads)
	}
	defer release()
	// Everything this request keeps in memory is charged to one account,
	// which shares max_memory_per_client with the client's other requests.
	acct := g.budget.OpenClient(client)
	defer acct.Close()
	r.Body = struct {
		io.Reader
		io.Closer
	}{bodyrate.New(r.Body, time.Duration(g.ReadTimeout), max(g.MinRate, 0), http.NewResponseController(w).SetReadDeadline), r.Body}
	if g.MaxRequestSize > 0 {
		if r.ContentLength > g.MaxRequestSize {
			return g.fail(w, r, next, repl, q, &http.MaxBytesError{Limit: g.MaxRequestSize})
		}
		r.Body = http.MaxBytesReader(w, r.Body, g.MaxRequestSize)
	}
	if err := q.Store(acct); err != nil {
		q.Rollback()
		return g.fail(w, r, next, repl, q, err)
	}
	if g.Output == OutputPass {
		rec := caddyhttp.NewResponseRecorder(w, nil, nil)
		return q.Pass(rec, next.ServeHTTP, rec.Status)
	}
	return q.Respond(w)
}

// flowConfig is the configuration of internal/uploadreq, which runs each
// request, from the handler's.
func (g *Gateway) flowConfig() *uploadreq.Config {
	c := &uploadreq.Config{
		Route:               g.Route,
		Bucket:              g.Bucket,
		Prefix:              g.Prefix,
		Key:                 g.Key,
		FilenameHeader:      g.FilenameHeader,
		MaxFileSize:         g.MaxFileSize,
		Form:                formstream.Limits{MaxFiles: g.MaxFiles, MaxFields: g.MaxFields, MaxFieldBytes: g.MaxFieldSize, MaxFormBytes: g.MaxFormSize},
		Metadata:            g.Metadata,
		ClientMetadata:      g.ClientMetadata,
		Pass:                g.Output == OutputPass,
		PassStyle:           g.PassFieldStyle,
		PassFormFields:      g.PassFormFields,
		RollbackOn:          g.RollbackOn,
		AllowedTypes:        g.AllowedTypes,
		MaxUploadsPerClient: g.MaxUploadsPerClient,
		ReadTimeout:         time.Duration(g.ReadTimeout),
		MinRate:             g.MinRate,
		MemoryWait:          time.Duration(g.MemoryWait),
		AllowedRoles:        g.AllowedRoles,
		AllowAnonymous:      g.AllowAnonymous,
		Logger:              g.logger,
	}
	if g.PassFields == nil {
		c.PassFields = passfields.Defaults()
	}
	for _, f := range g.PassFields {
		c.PassFields = append(c.PassFields, formstream.Field{Name: f.Name, Value: f.Value})
	}
	if g.PassSignature != nil {
		c.SignatureField = g.PassSignature.Field
		c.SignatureKey = []byte(caddy.NewReplacer().ReplaceAll(g.PassSignature.Secret, ""))
	}
	return c
}

// replacer is Caddy's replacer as the request's placeholders.
type replacer struct{ *caddy.Replacer }

// ReplaceKey expands a key template. Every {http.auth.user.*} value becomes
// one key segment: a user id or name with "/" or ".." in it must not reach
// another user's folder.
func (r replacer) ReplaceKey(template string) (string, error) {
	return r.ReplaceFunc(template, func(variable string, val any) (any, error) {
		if !strings.HasPrefix(variable, "http.auth.user.") {
			return val, nil
		}
		return objectkey.EscapeSegment(caddy.ToString(val)), nil
	})
}

// fail answers a failed upload: as on_error says, with the JSON error, or
// through Caddy's error handling when handle_errors is set.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, q *uploadreq.Request, err error) error {
	a := q.Fail(w, err)
	repl.Set("http.upload_gateway.error", a.Message)
	repl.Set("http.upload_gateway.error_code", a.Code)
	if g.OnError != nil && g.OnError.Handles(a.Status) {
		// The request's outcome (metrics, audit) stays the refusal's.
		repl.Set("http.upload_gateway.error_status", strconv.Itoa(a.Status))
		expand := func(s string) string { return repl.ReplaceAll(s, "") }
		return g.OnError.Answer(w, r, refusal.Refusal{Status: a.Status, Code: a.Code, Message: a.Message}, expand, next.ServeHTTP)
	}
	if g.HandleErrors {
		return caddyhttp.Error(a.Status, err)
	}
	level := zapcore.DebugLevel
	if a.Status >= 500 {
		level = zapcore.ErrorLevel
	}
	if c := g.logger.Check(level, "upload failed"); c != nil {
		c.Write(zap.Int("status", a.Status), zap.String("code", a.Code), zap.Error(err))
	}
	return a.Write(w)
}

// Defaults of the limits against hostile or broken clients.
const (
	DefaultMemoryWait          = 30 * time.Second
	DefaultReadTimeout         = 30 * time.Second
	DefaultMinRate             = 8 << 10
	DefaultMaxUploadsPerClient = 10
	DefaultMaxFiles            = 100
)

// Interface guards
var (
	_ caddy.Provisioner           = (*Gateway)(nil)
	_ caddy.Validator             = (*Gateway)(nil)
	_ caddy.CleanerUpper          = (*Gateway)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gateway)(nil)
)
