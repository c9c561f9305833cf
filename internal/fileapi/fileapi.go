package fileapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
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

// MinSecretLen is the shortest Config.Secret accepted, in bytes.
const MinSecretLen = 32

// Limits of the API.
const (
	maxSignParts              = 100      // part URLs per sign-parts call
	maxBodyBytes              = 64 << 10 // JSON request body
	defaultListLimit          = 100
	maxListLimit              = 1000
	statusClientClosedRequest = 499
)

// Actions passed to [Authorizer.Authorize].
const (
	ActionUpload   = "upload"   // create a file, sign parts, list parts, complete, abort
	ActionDownload = "download" // read details, presign a download
	ActionDelete   = "delete"   // delete a file; also allows abort
	ActionList     = "list"     // only reported to OnDenied: listing asks ListPrefix
)

// Subject is the authenticated user of a request.
type Subject struct {
	ID    string
	Email string
	Role  roles.Role
}

type subjectKey struct{}

// WithSubject returns a copy of ctx carrying the authenticated user.
func WithSubject(ctx context.Context, s Subject) context.Context {
	return context.WithValue(ctx, subjectKey{}, s)
}

// SubjectFrom returns the user stored by [WithSubject].
func SubjectFrom(ctx context.Context) (Subject, bool) {
	s, ok := ctx.Value(subjectKey{}).(Subject)
	return s, ok
}

// Resolved is what a request acted on, for audit logs: the object key the
// API resolved (decoded from a valid fileId, or chosen for a new file) and
// the multipart upload id. Both stay empty until the request gets that
// far, so a malformed or out-of-prefix fileId leaves no key. Put one in
// the request context with [WithResolved]; the Service fills it in.
type Resolved struct {
	Key      string
	UploadID string
}

type resolvedKey struct{}

// WithResolved returns a copy of ctx in which the Service records what
// the request acted on into res.
func WithResolved(ctx context.Context, res *Resolved) context.Context {
	return context.WithValue(ctx, resolvedKey{}, res)
}

// resolved records the key (and upload id, when not "") of a request.
func resolved(ctx context.Context, key, uploadID string) {
	res, _ := ctx.Value(resolvedKey{}).(*Resolved)
	if res == nil {
		return
	}
	if key != "" {
		res.Key = key
	}
	if uploadID != "" {
		res.UploadID = uploadID
	}
}

// Authorizer decides what a user may do. An adapter over internal/policy
// satisfies it. It does no I/O: every error it returns is a denial (403).
type Authorizer interface {
	// Authorize returns nil when user may perform action (one of the
	// Action constants) on the object key.
	Authorize(user Subject, action string, key string) error
	// OwnerPrefix is the prefix new files of the user go under, ending in
	// "/" (one is added when missing).
	OwnerPrefix(userID string) string
	// ListPrefix is the prefix the user may list: their own files, or all
	// files when wantAll (an error when the user may not).
	ListPrefix(user Subject, wantAll bool) (string, error)
}

// Presigner signs URLs for the user; an adapter over internal/presign,
// bound to the user's credentials, satisfies it. It adds the server-side
// encryption headers the bucket needs.
type Presigner interface {
	PutObject(ctx context.Context, user Subject, in PutInput) (*Presigned, error)
	UploadPart(ctx context.Context, user Subject, in PartInput) (*Presigned, error)
	GetObject(ctx context.Context, user Subject, in GetInput) (*Presigned, error)
	PostObject(ctx context.Context, user Subject, in PostInput) (*PresignedPost, error)
}

// PutInput describes a presigned PutObject. Every field but Expires is
// signed: the client must send ContentType, ContentLength, ChecksumSHA256
// (base64, when set), Metadata and ContentDisposition as given.
type PutInput struct {
	Bucket             string
	Key                string
	ContentType        string
	ContentLength      int64
	ChecksumSHA256     string // base64 of the 32-byte digest, or ""
	Metadata           map[string]string
	ContentDisposition string
	// CreateOnly asks for If-None-Match: * to be signed: S3 then stores the
	// body only if the key holds no object yet, so the URL cannot be
	// replayed to overwrite the file.
	CreateOnly bool
	Expires    time.Duration
}

// PartInput describes a presigned UploadPart of exactly ContentLength bytes.
type PartInput struct {
	Bucket        string
	Key           string
	UploadID      string
	PartNumber    int32
	ContentLength int64
	Expires       time.Duration
}

// GetInput describes a presigned GetObject that downloads as an attachment
// named FileName (the presigner sets response-content-disposition, e.g.
// with objectkey.ContentDisposition).
type GetInput struct {
	Bucket   string
	Key      string
	FileName string
	Expires  time.Duration
}

// PostInput describes a presigned POST policy: the content-length-range
// [MinSize, MaxSize], the exact Content-Type and the x-amz-meta-* fields.
type PostInput struct {
	Bucket      string
	Key         string
	ContentType string
	MinSize     int64
	MaxSize     int64
	Metadata    map[string]string
	Expires     time.Duration
}

// Presigned is a signed request: the client sends Method to URL with
// Headers.
type Presigned struct {
	Method  string
	URL     string
	Headers http.Header
	Expires time.Time
}

// PresignedPost is a signed browser form: the client POSTs Fields and then
// the file to URL.
type PresignedPost struct {
	URL     string
	Fields  map[string]string
	Expires time.Time
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
}

// Encryption is the server-side encryption of new objects.
type Encryption = s3limits.Encryption

// Config configures a [Service]. Zero values mean the defaults.
type Config struct {
	// Bucket holds every file. Required.
	Bucket string
	// Prefix is the base prefix: every fileId must decode to a key below
	// it. "" is the whole bucket.
	Prefix string

	// Store makes the gateway-credential S3 calls. Required.
	Store ObjectStore
	// Presigner signs URLs for the user. Required.
	Presigner Presigner
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

	// Encryption is set on CreateMultipartUpload.
	Encryption Encryption

	// CreateOnly, when set, says whether the S3 server honours
	// If-None-Match: * (it may find out on first use and wait for the
	// answer until ctx ends). When it does, upload URLs are signed with it
	// (PutInput.CreateOnly) and multipart uploads are completed with it, so
	// neither can replace an object that exists. nil: never.
	CreateOnly func(ctx context.Context) bool

	// OnDenied, when set, is called with the action whenever the
	// Authorizer denies a request (metrics).
	OnDenied func(action string)
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
	case cfg.Presigner == nil:
		return nil, errors.New("fileapi: presigner is required")
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
	case cfg.URLExpiry < 0 || cfg.URLExpiry > 7*24*time.Hour:
		return nil, errors.New("fileapi: url expiry must be within 1s and 7 days")
	case cfg.UploadTTL < 0 || cfg.CallTimeout < 0:
		return nil, errors.New("fileapi: negative duration")
	}
	return &Service{
		cfg:        cfg,
		prefix:     prefix,
		secrets:    append([][]byte{cfg.Secret}, cfg.OldSecrets...),
		initiating: map[string]int{},
		now:        time.Now,
		newID:      uuid.NewString,
	}, nil
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

// handler serves one route. arg is the route's path parameter (a fileId or
// an uploadId), or "". It returns the data of a 200 response.
type handler func(w http.ResponseWriter, r *http.Request, user Subject, arg string) (any, error)

// ServeHTTP routes, authenticates and answers a request.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	methods, arg := s.route(r)
	if methods == nil {
		s.fail(w, errRouteNotFound)
		return
	}
	h, ok := methods[r.Method]
	if !ok {
		allow := make([]string, 0, len(methods))
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			if methods[m] != nil {
				allow = append(allow, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		s.fail(w, errMethodNotAllowed)
		return
	}
	user, ok := SubjectFrom(r.Context())
	if !ok || user.ID == "" {
		s.fail(w, errUnauthenticated)
		return
	}
	data, err := h(w, r, user, arg)
	if err != nil {
		s.fail(w, err)
		return
	}
	_ = envelope.WriteData(w, http.StatusOK, data)
}

// route finds the handlers of a path, by method, and its path parameter.
// It returns nil for an unknown path.
func (s *Service) route(r *http.Request) (map[string]handler, string) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/files")
	if !ok || rest != "" && rest[0] != '/' {
		return nil, ""
	}
	var segs []string
	if rest = strings.TrimPrefix(rest, "/"); rest != "" {
		segs = strings.Split(rest, "/")
		for i, seg := range segs {
			v, err := url.PathUnescape(seg)
			if err != nil || v == "" {
				return nil, ""
			}
			segs[i] = v
		}
	}
	post := func(h handler) map[string]handler { return map[string]handler{http.MethodPost: h} }
	switch {
	case len(segs) == 0:
		return map[string]handler{http.MethodGet: s.list}, ""
	case len(segs) == 1 && segs[0] == "upload-url":
		return post(s.uploadURL), ""
	case len(segs) == 1 && segs[0] == "upload-post":
		return post(s.uploadPost), ""
	case segs[0] == "multipart":
		switch {
		case len(segs) == 2 && segs[1] == "initiate":
			return post(s.initiate), ""
		case len(segs) == 2 && segs[1] == "sign-parts":
			return post(s.signParts), ""
		case len(segs) == 2 && segs[1] == "complete":
			return post(s.complete), ""
		case len(segs) == 2 && segs[1] == "abort":
			return post(s.abort), ""
		case len(segs) == 3 && segs[2] == "parts":
			return map[string]handler{http.MethodGet: s.listParts}, segs[1]
		}
		return nil, ""
	case len(segs) == 1:
		return map[string]handler{http.MethodGet: s.head, http.MethodDelete: s.delete}, segs[0]
	case len(segs) == 2 && segs[1] == "download-url":
		return map[string]handler{http.MethodGet: s.downloadURL}, segs[0]
	}
	return nil, ""
}

// authorize asks the Authorizer, reporting a denial to OnDenied.
func (s *Service) authorize(user Subject, action, key string) error {
	if err := s.cfg.Authorizer.Authorize(user, action, key); err != nil {
		return s.denied(action, err)
	}
	return nil
}

func (s *Service) denied(action string, err error) error {
	if s.cfg.OnDenied != nil {
		s.cfg.OnDenied(action)
	}
	return fmt.Errorf("%w: %s: %v", errDenied, action, err)
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
