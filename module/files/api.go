// Package files is the presigned file API, `http.handlers.upload_api`
// (Caddyfile directive `upload_api`): a REST API that hands out S3 URLs
// signed for the caller (single PUT, multipart parts, browser POST,
// download), lists and deletes files, and checks every action against the
// role policy. The REST logic lives in internal/fileapi; this package owns
// its Caddy configuration, the S3/STS clients, the signing credentials and
// the request's metrics and audit line.
package files

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/cors"
	"github.com/caddy-upload-gateway/upload-gateway/internal/createonly"
	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/fileapi"
	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/presign"
	"github.com/caddy-upload-gateway/upload-gateway/internal/rolecreds"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"

	"github.com/caddy-upload-gateway/upload-gateway/module/metricsapp"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	caddy.RegisterModule(API{})
}

// API serves the REST file API for clients that upload and download
// directly to and from S3 with presigned URLs, under `<base_path>/files`:
//
//	POST   /files/upload-url            presigned PUT (binds size, type, SSE-KMS, checksum)
//	POST   /files/upload-post           presigned POST policy for browser forms
//	POST   /files/multipart/initiate    multipart upload + first part URLs
//	POST   /files/multipart/sign-parts  more part URLs
//	GET    /files/multipart/{id}/parts  uploaded parts (resume)
//	POST   /files/multipart/complete    server-checked completion
//	POST   /files/multipart/abort
//	GET    /files                       own (or all) files, paginated
//	GET    /files/limits                sizes and types allowed (for pages)
//	GET    /files/{fileId}              metadata
//	GET    /files/{fileId}/download-url presigned GET
//	DELETE /files/{fileId}
//	POST   /files/{fileId}/confirm      check and count a presigned PUT/POST upload
//
// and, for Uppy's @uppy/aws-s3 (6.x), the routes of Uppy's Companion server
// (`companionEndpoint: <origin><base_path>`) and a signing route for its
// signRequest callback, on the same model (keys chosen by the gateway,
// sealed upload tokens, server-checked completion):
//
//	GET    /s3/params                   POST policy for one file
//	POST   /s3/multipart                create a multipart upload
//	GET    /s3/multipart/{id}/{n}       part URL
//	GET    /s3/multipart/{id}           uploaded parts
//	POST   /s3/multipart/{id}/complete  server-checked completion
//	DELETE /s3/multipart/{id}           abort
//	POST   /s3/sign                     signRequest callback
//
// The user comes from `upload_auth` (`{http.auth.user.id}`, `.role`,
// `.email`); what each role may do on which keys is the route's policy
// (default: admin everything on all files; uploader uploads, reads, lists
// and deletes own files; viewer reads and lists all files). URLs are
// signed with temporary credentials from STS AssumeRole of the role's ARN,
// with an inline session policy limited to the user's prefix and allowed
// actions, cached per (role, user) until shortly before they expire; without
// a role ARN the gateway's own credentials sign.
//
// Uploads whose bytes go straight to S3 are counted in the same upload
// metrics (`upload_gateway_uploads_total`, `_upload_bytes_total`,
// `_upload_duration_seconds`, `_multipart_parts`, …) and audit lines
// (action `upload`, with `method` `multipart` or `presigned`) as streamed
// ones: a multipart upload when it is completed, a single PUT or POST when
// the client confirms it (`POST /files/{fileId}/confirm`, which also
// checks its size and type and deletes it when they do not match). A
// single upload that is never confirmed is stored but not counted.
type API struct {
	// Where files are stored: bucket, region, endpoint, credentials and
	// server-side encryption.
	shared.S3Config

	// The prefix all files are under. Each user's files are under
	// `<prefix>users/<user id>/`. Default `files/`.
	Prefix string `json:"prefix,omitempty"`

	// A path prefix before `/files`, e.g. `/api`. Default: none.
	BasePath string `json:"base_path,omitempty"`

	// Cross-origin access for pages on other origins: preflights of every
	// route under base_path answered, answers readable by allowed origins.
	// Default: none, and preflights pass on to the next handler.
	CORS *CORSConfig `json:"cors,omitempty"`

	// The IAM role assumed to sign each role's URLs: role → ARN; the key
	// `*` applies to every role without its own. Default: none, so the
	// gateway's own credentials sign.
	RoleARNs map[string]string `json:"role_arns,omitempty"`

	// The STS endpoint, for S3-compatible servers with STS.
	STSEndpoint string `json:"sts_endpoint,omitempty"`

	// Which credentials sign POST policies: `session` (default: the user's
	// STS session, like the URLs) or `gateway` (the gateway's own). Use
	// `gateway` with S3-compatible servers that reject temporary
	// credentials in POST policies (SeaweedFS does); the policy pins the
	// key, content type, size range and encryption either way.
	PostPolicyCredentials string `json:"post_policy_credentials,omitempty"`

	// Lifetime of the assumed-role sessions. Default 1h.
	STSDuration caddy.Duration `json:"sts_duration,omitempty"`

	// Secret (at least 32 bytes) that signs multipart upload tokens; every
	// instance must share it. Required: an empty or short secret (say, a
	// `{env.…}` placeholder whose variable is unset) refuses to provision,
	// unless insecure_random_secret is set.
	Secret string `json:"secret,omitempty"`

	// Sign multipart upload tokens with a random key made at start-up
	// when no secret is set. Uploads then fail after a restart and on any
	// other instance: for a single development instance only.
	InsecureRandomSecret bool `json:"insecure_random_secret,omitempty"`

	// Previous secrets, still accepted for verification after a rotation.
	OldSecrets []string `json:"old_secrets,omitempty"`

	// Lifetime of presigned URLs. Default 15m.
	URLExpiry caddy.Duration `json:"url_expiry,omitempty"`

	// Lifetime of a multipart upload token. Default 24h.
	UploadTTL caddy.Duration `json:"upload_ttl,omitempty"`

	// Largest single PUT/POST upload, in bytes. Default 100 MiB.
	MaxSingleSize int64 `json:"max_single_size,omitempty"`

	// Largest multipart upload, in bytes. Default 5 TiB.
	MaxFileSize int64 `json:"max_file_size,omitempty"`

	// The part size when the client does not ask for one. Default 16 MiB.
	PartSize int64 `json:"part_size,omitempty"`

	// How many part URLs the initiate call returns. Default 20.
	PartBatch int `json:"part_batch,omitempty"`

	// Sign up to this many part URLs at initiate (every part of a file
	// with at most that many parts), for clients that never call
	// sign-parts. Default 0: part_batch only. At most 1000.
	SignAllParts int `json:"sign_all_parts,omitempty"`

	// How many multipart uploads one user may be starting at the same
	// time; more answer 429 with Retry-After. Default 4; -1: no limit.
	MaxConcurrentInitiates int `json:"max_concurrent_initiates,omitempty"`

	// Whether presigned upload URLs and multipart completions are
	// create-only: `If-None-Match: *` is signed into PUT URLs (a header
	// the client must send, listed in requiredHeaders) and sent with
	// CompleteMultipartUpload, so a replayed URL gets 412 instead of
	// overwriting the file. `auto` (default) finds out on first use
	// whether the S3 server honours the header, by writing and deleting a
	// probe object under `<prefix>users/_/` (a folder no user owns), and
	// logs the answer; `on` always (AWS S3 honours it); `off` never.
	CreateOnly string `json:"create_only,omitempty"`

	// Content types accepted (declared by the client). Default: all.
	AllowedTypes []string `json:"allowed_types,omitempty"`

	// Abort multipart uploads under the prefix that clients started and
	// never completed. Default: off. Its max_age must exceed upload_ttl.
	Janitor *shared.JanitorConfig `json:"janitor,omitempty"`

	// Policy overrides: role → action → scope, e.g.
	// `{"uploader": {"delete": "none"}}`. Actions: upload, download, list,
	// delete, manage. Scopes: own, all, none.
	Policy map[string]map[string]string `json:"policy,omitempty"`

	svc     *fileapi.Service
	cors    *cors.Policy
	policy  policy.Policy
	sts     *rolecreds.Provider
	gwCreds aws.CredentialsProvider
	rec     *metricsapp.Recorder
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (API) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.upload_api",
		New: func() caddy.Module { return new(API) },
	}
}

// Provision sets up the API without network calls.
func (a *API) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.S3Config.ApplyDefaults()
	a.S3Config.Expand()
	a.Prefix = cmp.Or(a.Prefix, "files/")
	a.BasePath = strings.TrimRight(a.BasePath, "/")
	if a.CORS != nil {
		p, err := a.CORS.policy()
		if err != nil {
			return err
		}
		a.cors = p
	}

	rec, err := metricsapp.NewRecorder(ctx, a.logger)
	if err != nil {
		return err
	}
	a.rec = rec
	m := rec.Metrics

	rules, err := policy.ParseRules(a.Policy)
	if err != nil {
		return fmt.Errorf("parsing policy: %v", err)
	}
	a.policy = policy.Default(a.Prefix).Override(rules)

	// One configuration, so S3 calls, STS calls and the gateway-signed URLs
	// share one credential cache.
	cfg, err := a.AWSConfig(ctx, 16)
	if err != nil {
		return fmt.Errorf("loading AWS configuration: %v", err)
	}
	client := a.NewS3Client(cfg, shared.S3Observer(m))
	a.gwCreds = cfg.Credentials
	if len(a.RoleARNs) > 0 {
		repl := caddy.NewReplacer()
		a.STSEndpoint = repl.ReplaceAll(a.STSEndpoint, "")
		for k, v := range a.RoleARNs {
			a.RoleARNs[k] = repl.ReplaceAll(v, "")
		}
		stsClient := sts.NewFromConfig(cfg, func(o *sts.Options) {
			if a.STSEndpoint != "" {
				o.BaseEndpoint = aws.String(a.STSEndpoint)
			}
			o.APIOptions = append(o.APIOptions, shared.SDKMetrics(func(_, result string, d time.Duration) { m.STSRequest(result, d) }))
		})
		a.sts = rolecreds.New(stsClient, rolecreds.Options{Duration: time.Duration(a.STSDuration)})
	}

	secret, err := a.tokenSecret()
	if err != nil {
		return err
	}
	var old [][]byte
	for i, s := range a.OldSecrets {
		v := caddy.NewReplacer().ReplaceAll(s, "")
		switch {
		case v == "":
			continue // an unset {env.…}: no rotation in progress
		case len(v) < fileapi.MinSecretLen:
			return fmt.Errorf("old_secret %d is %d bytes long, it must be at least %d", i+1, len(v), fileapi.MinSecretLen)
		}
		old = append(old, []byte(v))
	}
	allow, err := contenttype.NewAllowlist(a.AllowedTypes)
	if err != nil {
		return fmt.Errorf("parsing allowed_types: %v", err)
	}
	enc, err := a.ObjectEncryption()
	if err != nil {
		return fmt.Errorf("configuring encryption: %v", err)
	}
	var postCreds aws.CredentialsProvider
	if a.PostPolicyCredentials == "gateway" {
		postCreds = a.gwCreds
	}
	a.svc, err = fileapi.New(fileapi.Config{
		Bucket:                 a.Bucket,
		Prefix:                 a.Prefix,
		Store:                  client,
		Presigner:              presign.New(client),
		Credentials:            a.credentials,
		PostCredentials:        postCreds,
		Authorizer:             a.policy,
		Types:                  allow,
		Secret:                 secret,
		OldSecrets:             old,
		MaxSingleSize:          a.MaxSingleSize,
		MaxFileSize:            a.MaxFileSize,
		DefaultPartSize:        a.PartSize,
		PartBatch:              a.PartBatch,
		SignAllParts:           a.SignAllParts,
		BasePath:               a.BasePath,
		MaxConcurrentInitiates: a.MaxConcurrentInitiates,
		URLExpiry:              time.Duration(a.URLExpiry),
		UploadTTL:              time.Duration(a.UploadTTL),
		Encryption:             enc,
		CreateOnly:             a.createOnlyCheck(client, enc),
		OnDenied: func(action policy.Action) {
			m.AccessDenied(string(action))
			a.rec.CW.AccessDenied(a.Prefix)
		},
		OnPresign: m.Presign,
		OnError: func(status int, err error) {
			if status >= 500 && status != envelope.StatusClientClosedRequest {
				a.logger.Error("file API request failed", zap.Int("status", status), zap.Error(err))
			}
		},
	})
	if err != nil {
		return fmt.Errorf("configuring the file API: %v", err)
	}
	if a.Janitor != nil {
		if err := a.Janitor.Start(ctx, client, a.Bucket, a.Prefix, m, a.logger); err != nil {
			return err
		}
	}
	return nil
}

// tokenSecret expands the secret that signs upload tokens. An empty or
// short secret is an error: a random one would make instances reject each
// other's uploads, so it is only made with InsecureRandomSecret.
func (a *API) tokenSecret() ([]byte, error) {
	secret := caddy.NewReplacer().ReplaceAll(a.Secret, "")
	switch {
	case secret == "" && a.InsecureRandomSecret:
		b := make([]byte, fileapi.MinSecretLen)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("making a random secret: %v", err)
		}
		a.logger.Warn("insecure_random_secret: multipart upload tokens are signed with a random per-process key, so only this instance can complete uploads it started, and not after a restart")
		return b, nil
	case secret == "" && a.Secret != "":
		return nil, fmt.Errorf("secret %q expands to nothing: set the variable to a random value of at least %d bytes, the same on every instance", a.Secret, fileapi.MinSecretLen)
	case secret == "":
		return nil, fmt.Errorf("secret is required: a random value of at least %d bytes, the same on every instance (or insecure_random_secret for a single development instance)", fileapi.MinSecretLen)
	case len(secret) < fileapi.MinSecretLen:
		return nil, fmt.Errorf("secret is %d bytes long, it must be at least %d", len(secret), fileapi.MinSecretLen)
	}
	return []byte(secret), nil
}

// createOnlyCheck returns what tells the file API whether writes are
// create-only (see CreateOnly): nil for off, and for auto a detector that
// probes S3 on first use, never here.
func (a *API) createOnlyCheck(client *s3.Client, enc s3stream.Encryption) func(context.Context) bool {
	switch a.CreateOnly {
	case "on":
		return func(context.Context) bool { return true }
	case "off":
		return nil
	}
	// The probe goes where new files go, in the one owner folder no user
	// owns (the empty id's), so gateway credentials limited to the users'
	// folders may write it.
	base := a.policy.OwnerPrefix("")
	probe := s3.PutObjectInput{Bucket: aws.String(a.Bucket), ContentType: aws.String("text/plain")}
	probe.ServerSideEncryption, probe.SSEKMSKeyId, probe.BucketKeyEnabled, probe.SSEKMSEncryptionContext = enc.RequestFields()
	d := &createonly.Detector{
		Probe: func(ctx context.Context) (createonly.Support, error) {
			in := probe
			in.Key = aws.String(base + "create-only-probe-" + uuid.NewString())
			return createonly.Probe(ctx, client, in)
		},
		Report: func(s createonly.Support, err error) {
			switch s {
			case createonly.Supported:
				a.logger.Info("S3 honours If-None-Match: presigned upload URLs and multipart completions are create-only")
			case createonly.Unsupported:
				a.logger.Warn("S3 does not honour If-None-Match: a presigned upload URL can be replayed to overwrite its file until it expires; keep url_expiry short", zap.Error(err))
			default:
				a.logger.Warn("could not find out whether S3 honours If-None-Match: upload URLs are not create-only until a later probe succeeds", zap.Error(err))
			}
		},
	}
	return d.Supported
}

// Validate checks the configuration.
func (a *API) Validate() error {
	if err := a.S3Config.Validate(); err != nil {
		return err
	}
	if err := a.policy.Validate(); err != nil {
		return err
	}
	if a.Secret != "" && !strings.HasPrefix(a.Secret, "{") && len(a.Secret) < fileapi.MinSecretLen {
		return fmt.Errorf("secret must be at least %d bytes", fileapi.MinSecretLen)
	}
	if a.Secret != "" && a.InsecureRandomSecret {
		return fmt.Errorf("secret and insecure_random_secret exclude each other")
	}
	if j := a.Janitor; j != nil {
		ttl := cmp.Or(time.Duration(a.UploadTTL), fileapi.DefaultUploadTTL)
		if maxAge := cmp.Or(time.Duration(j.MaxAge), shared.DefaultJanitorMaxAge); maxAge <= ttl {
			return fmt.Errorf("janitor max_age %s must exceed upload_ttl %s, or it aborts uploads clients may still finish", maxAge, ttl)
		}
	}
	if a.SignAllParts < 0 || a.SignAllParts > fileapi.MaxSignAllParts {
		return fmt.Errorf("sign_all_parts must be within 0 and %d", fileapi.MaxSignAllParts)
	}
	if !slices.Contains([]string{"", "auto", "on", "off"}, a.CreateOnly) {
		return fmt.Errorf("create_only must be auto, on or off")
	}
	if !slices.Contains([]string{"", "session", "gateway"}, a.PostPolicyCredentials) {
		return fmt.Errorf("post_policy_credentials must be session or gateway")
	}
	for role := range a.RoleARNs {
		if _, err := roles.Parse(role); role != "*" && err != nil {
			return fmt.Errorf("role_arns: %v", err)
		}
	}
	return nil
}

// credentials returns the credentials that sign a user's URLs: a session
// of the IAM role of the user's role, else of the role "*", else the
// gateway's own.
func (a *API) credentials(user policy.Subject) aws.CredentialsProvider {
	arn, ok := a.RoleARNs[string(user.Role)]
	if !ok {
		arn = a.RoleARNs["*"]
	}
	if arn == "" || a.sts == nil {
		return a.gwCreds
	}
	session := rolecreds.Session{RoleARN: arn, UserID: user.ID, Bucket: a.Bucket, Grants: a.policy.Grants(user)}
	if strings.HasPrefix(a.KMSKeyID, "arn:") {
		session.KMSKeyARN = a.KMSKeyID
	}
	return a.sts.CredentialsFor(session)
}

// apiPath returns the path of r below base_path, and whether the file API
// serves it.
func (a *API) apiPath(r *http.Request) (string, bool) {
	path, ok := strings.CutPrefix(r.URL.Path, a.BasePath)
	return path, ok && (path == "/files" || strings.HasPrefix(path, "/files/") || strings.HasPrefix(path, "/s3/"))
}

// ServeHTTP serves the file API and passes other requests on.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	path, ok := a.apiPath(r)
	if !ok {
		return next.ServeHTTP(w, r)
	}
	start := time.Now()
	if a.cors != nil {
		rec := caddyhttp.NewResponseRecorder(w, nil, nil)
		if a.cors.Handle(rec, r) { // a preflight, answered
			a.rec.Record(r, metrics.Outcome{Route: a.Prefix, Endpoint: "OPTIONS (cors preflight)",
				Result: metrics.ResultOf(rec.Status()), Status: rec.Status(), Duration: time.Since(start)})
			return nil
		}
	}
	if r.Method == http.MethodOptions {
		return next.ServeHTTP(w, r) // without cors, preflights are for other handlers
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	ctx := r.Context()
	if id, _ := repl.GetString("http.auth.user.id"); id != "" {
		role, _ := repl.GetString("http.auth.user.role")
		ctx = fileapi.WithSubject(ctx, policy.Subject{ID: id, Role: roles.Role(role)})
	}
	res := new(fileapi.Resolved)
	r2 := r.WithContext(fileapi.WithResolved(ctx, res))
	u := *r.URL
	u.Path = path
	u.RawPath = ""
	r2.URL = &u

	rec := caddyhttp.NewResponseRecorder(w, nil, nil)
	a.svc.ServeHTTP(rec, r2)
	a.record(r, res, rec.Status(), time.Since(start))
	return nil
}

// record reports one answered request: metrics by route pattern ("other"
// when none matched) and, for presigning, downloads, deletes and failures,
// an audit line with what the API resolved (res), never what the request
// itself says. A request that finished a presigned upload (res.Upload:
// multipart complete, confirm) also counts that upload in the upload
// metrics, and its audit line is the upload's (action "upload", with
// method, size, parts and the upload's duration).
func (a *API) record(r *http.Request, res *fileapi.Resolved, status int, d time.Duration) {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	role := ""
	if repl != nil {
		role, _ = repl.GetString("http.auth.user.role")
	}
	o := metrics.Outcome{Route: a.Prefix, Endpoint: cmp.Or(res.Route, "other"), Result: metrics.ResultOf(status),
		Role: cmp.Or(role, "anonymous"), Status: status, Duration: d, Key: res.Key, UploadID: res.UploadID}
	if u := res.Upload; u != nil {
		o.Method, o.Bytes, o.Parts = u.Method, u.Bytes, u.Parts
		if u.Stored {
			o.Files = 1
		}
		a.rec.Uploaded(r, o, u.Duration)
		return
	}
	if res.Action != "" || status >= 400 { // reads and part signing are not audited
		o.Action = cmp.Or(res.Action, o.Endpoint)
	}
	a.rec.Record(r, o)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*API)(nil)
	_ caddy.Validator             = (*API)(nil)
	_ caddyhttp.MiddlewareHandler = (*API)(nil)
	_ fileapi.Authorizer          = policy.Policy{}
	_ fileapi.Presigner           = (*presign.Signer)(nil)
)
