package fileapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/presign"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// Defaults for zero Config fields.
const (
	DefaultMaxSingleSize int64 = 100 << 20
	DefaultMaxFileSize         = s3limits.MaxObjectSize
	DefaultPartSize      int64 = 16 << 20
	DefaultPartBatch           = 20
	DefaultURLExpiry           = 15 * time.Minute
	DefaultUploadTTL           = 24 * time.Hour
	DefaultCallTimeout         = 2 * time.Minute
	// DefaultMaxConcurrentInitiates is how many multipart uploads one
	// user may be starting at the same time.
	DefaultMaxConcurrentInitiates = 4
)

// MaxSignAllParts bounds Config.SignAllParts: the part URLs one initiate
// answer may carry.
const MaxSignAllParts = 1000

// MinSecretLen is the shortest Config.Secret accepted, in bytes.
const MinSecretLen = 32

// Limits of the API.
const (
	maxSignParts     = 100      // part URLs per sign-parts call
	maxBodyBytes     = 64 << 10 // JSON request body
	defaultListLimit = 100
	maxListLimit     = 1000
)

// WithSubject returns a copy of ctx carrying the authenticated user.
func WithSubject(ctx context.Context, s policy.Subject) context.Context {
	return context.WithValue(ctx, subjectKey{}, s)
}

type subjectKey struct{}

// Resolved is what a request acted on, for metrics and audit logs: the
// route that served it, the object key the API resolved (decoded from a
// valid fileId, or chosen for a new file) and the multipart upload id.
// Key and UploadID stay empty until the request gets that far, so a
// malformed or out-of-prefix fileId leaves no key. Put one in the request
// context with [WithResolved]; the Service fills it in.
type Resolved struct {
	// Route is the ServeMux pattern of the route, e.g.
	// "GET /files/{fileId}"; "" when no route matched (404, 405).
	Route string
	// Action names the route in audit lines, e.g. "upload_url"; "" for
	// reads and part signing, which are audited only when they fail.
	Action   string
	Key      string
	UploadID string
	// Upload is set when the request finished an upload whose bytes went
	// to S3 through presigned URLs (multipart complete, confirm): what the
	// upload metrics and audit line count. Nil otherwise.
	Upload *Upload
}

// Methods of an [Upload]: how its bytes went to S3.
const (
	MethodPresigned = "presigned" // one presigned PUT or POST, then confirm
	MethodMultipart = "multipart" // presigned part URLs, then complete
)

// Upload is the outcome of an upload that went straight to S3, reported
// once, by the request that finished it: a complete or a first confirm.
// Requests that fail before the outcome is final (a storage error, a part
// replaced during completion) report none, since the client may try again.
type Upload struct {
	// Method is MethodPresigned or MethodMultipart.
	Method string
	// Stored is true when the object is stored, false when it was refused
	// (deleted by confirm, or the multipart upload aborted by complete).
	Stored bool
	// Bytes is the object's size, or what the parts added up to.
	Bytes int64
	// Parts is the number of parts of a multipart upload, else 0.
	Parts int
	// Duration is the time from the gateway issuing the upload (the
	// upload URL or form, or initiate) to its end (confirm or complete);
	// 0 when unknown.
	Duration time.Duration
}

// uploaded reports the outcome of an upload that went straight to S3.
func uploaded(ctx context.Context, u Upload) {
	if res, _ := ctx.Value(resolvedKey{}).(*Resolved); res != nil {
		res.Upload = &u
	}
}

type resolvedKey struct{}

// WithResolved returns a copy of ctx in which the Service records what
// the request acted on into res.
func WithResolved(ctx context.Context, res *Resolved) context.Context {
	return context.WithValue(ctx, resolvedKey{}, res)
}

// resolved records the key (and upload id, when not "") of a request.
func resolved(ctx context.Context, key, uploadID string) {
	if res, _ := ctx.Value(resolvedKey{}).(*Resolved); res != nil {
		res.Key, res.UploadID = cmp.Or(key, res.Key), cmp.Or(uploadID, res.UploadID)
	}
}

// Authorizer decides what a user may do; a [policy.Policy] satisfies it.
// It does no I/O: every error it returns is a denial (403).
type Authorizer interface {
	Authorize(user policy.Subject, action policy.Action, key string) error
	// OwnerPrefix is the prefix new files of the user go under, ending in
	// "/" (one is added when missing).
	OwnerPrefix(userID string) string
	// ListPrefix is the prefix the user may list: their own files, or all
	// files when wantAll (an error when the user may not).
	ListPrefix(user policy.Subject, wantAll bool) (string, error)
}

// Presigner signs URLs and POST forms with the credentials given; a
// [*presign.Signer] satisfies it.
type Presigner interface {
	PutObject(ctx context.Context, creds aws.CredentialsProvider, r presign.PutRequest) (*presign.Presigned, error)
	UploadPart(ctx context.Context, creds aws.CredentialsProvider, r presign.PartRequest) (*presign.Presigned, error)
	GetObject(ctx context.Context, creds aws.CredentialsProvider, r presign.GetRequest) (*presign.Presigned, error)
	PostObject(ctx context.Context, creds aws.CredentialsProvider, r presign.PostRequest) (*presign.PresignedPost, error)
}

// ObjectStore is the part of *s3.Client the API calls with the gateway's
// credentials.
type ObjectStore interface {
	CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	ListParts(context.Context, *s3.ListPartsInput, ...func(*s3.Options)) (*s3.ListPartsOutput, error)
	CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	// GetObject reads the first bytes of an object to confirm its type.
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	// GetObjectTagging and PutObjectTagging read and set the tag that
	// marks an object as confirmed (counted).
	GetObjectTagging(context.Context, *s3.GetObjectTaggingInput, ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error)
	PutObjectTagging(context.Context, *s3.PutObjectTaggingInput, ...func(*s3.Options)) (*s3.PutObjectTaggingOutput, error)
}

// Config configures a [Service]. Zero values mean the defaults.
type Config struct {
	// Bucket holds every file. Required.
	Bucket string
	// Prefix is the base prefix: every fileId must decode to a key below
	// it. "" is the whole bucket.
	Prefix string

	// Store makes the gateway-credential S3 calls. Required.
	Store ObjectStore
	// Presigner signs URLs. Required.
	Presigner Presigner
	// Credentials returns the credentials that sign a user's URLs and
	// forms, usually scoped to the user. Required.
	Credentials func(user policy.Subject) aws.CredentialsProvider
	// PostCredentials, when set, sign every POST form instead, for S3
	// servers that reject temporary credentials in POST policies.
	PostCredentials aws.CredentialsProvider
	// Authorizer decides what a user may do. Required.
	Authorizer Authorizer
	// Types is the content type allow-list; nil allows every type.
	Types *contenttype.Allowlist

	// Secret signs multipart upload tokens; at least 32 bytes, the same on
	// every instance. Required.
	Secret []byte
	// OldSecrets still verify tokens but never sign new ones (rotation).
	OldSecrets [][]byte

	// MaxSingleSize bounds upload-url and upload-post files. Default 100
	// MiB, at most 5 GiB (S3's PutObject limit).
	MaxSingleSize int64
	// MaxFileSize bounds multipart files. Default and maximum 5 TiB.
	MaxFileSize int64
	// DefaultPartSize is the smallest part size chosen when the client
	// gives none. Default 16 MiB, within 5 MiB–5 GiB.
	DefaultPartSize int64
	// PartBatch is how many part URLs initiate returns. Default 20, at
	// most 100.
	PartBatch int
	// SignAllParts, when above PartBatch, is how many part URLs initiate
	// returns instead: every part of a file of at most that many parts,
	// for clients that never call sign-parts. At most MaxSignAllParts.
	SignAllParts int

	// BasePath is the path prefix the caller strips before the Service
	// sees a request (e.g. "/api"): the signRequest route builds URLs of
	// the Service's own routes with it.
	BasePath string

	// URLExpiry is how long presigned URLs are valid. Default 15 minutes,
	// at most 7 days.
	URLExpiry time.Duration
	// UploadTTL is how long an upload token is valid: a multipart upload
	// must complete within it. Default 24 hours.
	UploadTTL time.Duration
	// CallTimeout bounds each S3 call (504 when exceeded). Default 2
	// minutes.
	CallTimeout time.Duration

	// MaxConcurrentInitiates bounds how many multipart uploads one user
	// may be starting at the same time (CreateMultipartUpload and the
	// first part URLs); more answer 429. Default 4; negative: no limit.
	MaxConcurrentInitiates int

	// Encryption is set on CreateMultipartUpload and signed into upload
	// URLs and POST forms.
	Encryption s3limits.Encryption

	// CreateOnly, when set, says whether the S3 server honours
	// If-None-Match: * (it may find out on first use and wait for the
	// answer until ctx ends). When it does, upload URLs are signed with it
	// (presign.PutRequest.CreateOnly) and multipart uploads are completed with it, so
	// neither can replace an object that exists. nil: never.
	CreateOnly func(ctx context.Context) bool

	// OnDenied, when set, is called with the action whenever the
	// Authorizer denies a request (metrics).
	OnDenied func(action policy.Action)
	// OnPresign, when set, is called for every URL or form signed, with
	// "put", "post", "part" or "get" (metrics).
	OnPresign func(kind string)
	// OnError, when set, is called for every failed request with the
	// status sent and the full error (logging; 5xx deserve attention).
	OnError func(status int, err error)
}

// Service serves the file API. It is safe for concurrent use.
type Service struct {
	cfg     Config
	prefix  string // cleaned Config.Prefix
	secrets [][]byte
	sse     s3limits.Encryption // cfg.Encryption

	mux      *http.ServeMux
	literals map[string]bool // segments after /files/ that name routes: never a fileId

	mu         sync.Mutex
	initiating map[string]int // user id → initiate calls in flight

	now   func() time.Time
	newID func() string
}

// New checks cfg, applies defaults and returns the service.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Bucket == "":
		return nil, errors.New("fileapi: bucket is required")
	case cfg.Store == nil:
		return nil, errors.New("fileapi: object store is required")
	case cfg.Presigner == nil || cfg.Credentials == nil:
		return nil, errors.New("fileapi: presigner and credentials are required")
	case cfg.Authorizer == nil:
		return nil, errors.New("fileapi: authorizer is required")
	case len(cfg.Secret) < MinSecretLen:
		return nil, fmt.Errorf("fileapi: secret must be at least %d bytes", MinSecretLen)
	}
	for i, s := range cfg.OldSecrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("fileapi: old secret %d must be at least %d bytes", i, MinSecretLen)
		}
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		k, err := objectkey.Clean(prefix, prefix+"/x")
		if err != nil {
			return nil, fmt.Errorf("fileapi: prefix: %v", err)
		}
		prefix = strings.TrimSuffix(k, "/x")
	}
	cfg.MaxSingleSize = cmp.Or(cfg.MaxSingleSize, DefaultMaxSingleSize)
	cfg.MaxFileSize = cmp.Or(cfg.MaxFileSize, DefaultMaxFileSize)
	cfg.DefaultPartSize = cmp.Or(cfg.DefaultPartSize, DefaultPartSize)
	cfg.PartBatch = cmp.Or(cfg.PartBatch, DefaultPartBatch)
	cfg.URLExpiry = cmp.Or(cfg.URLExpiry, DefaultURLExpiry)
	cfg.UploadTTL = cmp.Or(cfg.UploadTTL, DefaultUploadTTL)
	cfg.CallTimeout = cmp.Or(cfg.CallTimeout, DefaultCallTimeout)
	cfg.MaxConcurrentInitiates = cmp.Or(cfg.MaxConcurrentInitiates, DefaultMaxConcurrentInitiates)
	switch {
	case cfg.MaxSingleSize < 0 || cfg.MaxSingleSize > s3limits.MaxPutObjectSize:
		return nil, fmt.Errorf("fileapi: max single size must be within 1 and %d bytes", s3limits.MaxPutObjectSize)
	case cfg.MaxFileSize < 0 || cfg.MaxFileSize > s3limits.MaxObjectSize:
		return nil, fmt.Errorf("fileapi: max file size must be within 1 and %d bytes", s3limits.MaxObjectSize)
	case cfg.DefaultPartSize < s3limits.MinPartSize || cfg.DefaultPartSize > s3limits.MaxPartSize:
		return nil, fmt.Errorf("fileapi: default part size must be within %d and %d bytes", s3limits.MinPartSize, s3limits.MaxPartSize)
	case cfg.PartBatch < 0 || cfg.PartBatch > maxSignParts:
		return nil, fmt.Errorf("fileapi: part batch must be within 1 and %d", maxSignParts)
	case cfg.SignAllParts < 0 || cfg.SignAllParts > MaxSignAllParts:
		return nil, fmt.Errorf("fileapi: sign all parts must be within 0 and %d", MaxSignAllParts)
	case cfg.URLExpiry < 0 || cfg.URLExpiry > 7*24*time.Hour:
		return nil, errors.New("fileapi: url expiry must be within 1s and 7 days")
	case cfg.UploadTTL < 0 || cfg.CallTimeout < 0:
		return nil, errors.New("fileapi: negative duration")
	}
	s := &Service{
		cfg:        cfg,
		prefix:     prefix,
		secrets:    append([][]byte{cfg.Secret}, cfg.OldSecrets...),
		sse:        cfg.Encryption,
		mux:        http.NewServeMux(),
		literals:   map[string]bool{},
		initiating: map[string]int{},
		now:        time.Now,
		newID:      newUUIDv7,
	}
	s.routes()
	return s, nil
}

// newUUIDv7 returns a version 7 UUID, which carries the time it was made
// (issuedAt reads it back from a key).
func newUUIDv7() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// startInitiate counts an initiate call of the user, or refuses it with
// errTooManyRequests when the user already has MaxConcurrentInitiates in
// flight. Call the returned function when the call is done.
func (s *Service) startInitiate(userID string) (done func(), err error) {
	limit := s.cfg.MaxConcurrentInitiates
	if limit < 0 {
		return func() {}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.initiating[userID] >= limit {
		return nil, fmt.Errorf("%w: %d multipart uploads are being started for this user", errTooManyRequests, limit)
	}
	s.initiating[userID]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.initiating[userID]--; s.initiating[userID] <= 0 {
			delete(s.initiating, userID)
		}
	}, nil
}

// routes registers every route: its pattern, the action audit lines name
// it by ("" for reads and part signing) and its handler. The pattern is
// what [Resolved].Route reports.
func (s *Service) routes() {
	s.handle("GET /files", "", s.list)
	s.handle("GET /files/{$}", "", s.list)
	s.handle("GET /files/limits", "", s.limits)
	s.handle("POST /files/upload-url", "upload_url", s.uploadURL)
	s.handle("POST /files/upload-post", "upload_post", s.uploadPost)
	s.handle("POST /files/multipart/initiate", "multipart_initiate", s.initiate)
	s.handle("POST /files/multipart/sign-parts", "", s.signParts)
	s.handle("GET /files/multipart/{uploadId}/parts", "", s.listParts)
	s.handle("POST /files/multipart/complete", "multipart_complete", s.complete)
	s.handle("POST /files/multipart/abort", "multipart_abort", s.abort)
	s.handle("GET /files/{fileId}", "", s.head)
	s.handle("GET /files/{fileId}/download-url", "download_url", s.downloadURL)
	s.handle("DELETE /files/{fileId}", "delete", s.delete)
	s.handle("POST /files/{fileId}/confirm", "confirm", s.confirm)
	s.companionRoutes()
}

// handler serves one route for an authenticated user. It returns the data
// of a 200 response.
type handler func(w http.ResponseWriter, r *http.Request, user policy.Subject) (any, error)

// handle registers h under pattern ("METHOD /files/..."): it records the
// route in the request's Resolved, checks that there is a user and writes
// the envelope.
func (s *Service) handle(pattern, action string, h handler) {
	s.handleWith(pattern, action, h, func(w http.ResponseWriter, data any) {
		_ = envelope.WriteData(w, http.StatusOK, data)
	})
}

// handleWith is handle with write answering a request that succeeded.
// Failures always get the envelope, with the status classify gives.
func (s *Service) handleWith(pattern, action string, h handler, write func(w http.ResponseWriter, data any)) {
	_, rest, _ := strings.Cut(pattern, " /files/")
	if seg, _, _ := strings.Cut(rest, "/"); seg != "" && !strings.HasPrefix(seg, "{") {
		s.literals[seg] = true
	}
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if res, _ := r.Context().Value(resolvedKey{}).(*Resolved); res != nil {
			res.Route, res.Action = r.Pattern, action
		}
		user, ok := r.Context().Value(subjectKey{}).(policy.Subject)
		if !ok || user.ID == "" {
			s.fail(w, errUnauthenticated)
			return
		}
		data, err := h(w, r, user)
		if err != nil {
			s.fail(w, err)
			return
		}
		write(w, data)
	})
}

// ServeHTTP answers a request: a route's, or a JSON 404 or 405 (with the
// methods the path allows).
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.match(r, r.Method) {
		s.mux.ServeHTTP(w, r)
		return
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		if s.match(r, m) {
			allow = append(allow, m)
		}
	}
	if allow == nil {
		s.fail(w, errRouteNotFound)
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	s.fail(w, errMethodNotAllowed)
}

// match reports whether a route serves method on r's path. Unlike the
// ServeMux alone, it matches no HEAD (a GET route does not answer it), no
// path that is not clean (no redirect) and no route name as a fileId.
func (s *Service) match(r *http.Request, method string) bool {
	p := r.URL.EscapedPath()
	if method == http.MethodHead || !strings.HasPrefix(p, "/") || cleanPath(p) != p {
		return false
	}
	r2 := *r
	r2.Method = method
	_, pattern := s.mux.Handler(&r2)
	if strings.Contains(pattern, "{fileId}") {
		seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/files/"), "/")
		return !s.literals[seg]
	}
	return pattern != ""
}

// cleanPath is p without "." and ".." segments or empty ones, keeping a
// trailing "/", as ServeMux wants paths.
func cleanPath(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// authorize asks the Authorizer, reporting a denial to OnDenied.
func (s *Service) authorize(user policy.Subject, action policy.Action, key string) error {
	if err := s.cfg.Authorizer.Authorize(user, action, key); err != nil {
		return s.denied(action, err)
	}
	return nil
}

func (s *Service) denied(action policy.Action, err error) error {
	if s.cfg.OnDenied != nil {
		s.cfg.OnDenied(action)
	}
	return fmt.Errorf("%w: %s: %v", errDenied, action, err)
}

// postCredentials returns the credentials that sign user's POST forms.
func (s *Service) postCredentials(user policy.Subject) aws.CredentialsProvider {
	if s.cfg.PostCredentials != nil {
		return s.cfg.PostCredentials
	}
	return s.cfg.Credentials(user)
}

// createOnly reports whether writes are to be create-only.
func (s *Service) createOnly(ctx context.Context) bool {
	return s.cfg.CreateOnly != nil && s.cfg.CreateOnly(ctx)
}

func (s *Service) presigned(kind string) {
	if s.cfg.OnPresign != nil {
		s.cfg.OnPresign(kind)
	}
}

// callCtx bounds one S3 call.
func (s *Service) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.CallTimeout)
}

// expiresIn is the number of seconds until t, or the expiry asked for
// when the presigner did not say.
func (s *Service) expiresIn(t time.Time, asked time.Duration) int64 {
	if t.IsZero() {
		return int64(asked / time.Second)
	}
	return max(0, int64(t.Sub(s.now()).Round(time.Second)/time.Second))
}
