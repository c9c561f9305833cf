package tus

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/internal/awserr"
	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// Protocol constants.
const (
	Version    = "1.0.0"
	Extensions = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum"
	// OffsetContentType is the only PATCH body type tus allows.
	OffsetContentType = "application/offset+octet-stream"
)

// Defaults of Config's zero fields.
const (
	DefaultPartSize    int64 = 8 << 20
	DefaultTTL               = 24 * time.Hour
	DefaultLockTimeout       = 2 * time.Minute
	DefaultTempPrefix        = ".upload-gateway-tus/"
	DefaultMemoryLimit int64 = 1 << 30
	DefaultMemoryWait        = 30 * time.Second
	// maxMetadataLen bounds Upload-Metadata, which the upload URL carries.
	maxMetadataLen = 1024
	// s3Timeout bounds each S3 call made on behalf of a request whose
	// client may be gone.
	s3Timeout = 5 * time.Minute
)

// Config configures a Handler. Zero values mean the defaults.
type Config struct {
	// Bucket receives the uploads. Required.
	Bucket string
	// Prefix is prepended to the key of every finished upload.
	Prefix string
	// TempPrefix is the reserved prefix of tails and locks. Default
	// DefaultTempPrefix. It must not overlap Prefix's objects.
	TempPrefix string
	// Encryption is applied to every multipart upload.
	Encryption s3limits.Encryption
	// Secrets seal upload URLs: the first seals, all open. Required, each
	// at least MinSecretLen bytes, the same on every instance.
	Secrets [][]byte
	// MaxSize is Tus-Max-Size, the largest declared length accepted.
	// Default and upper bound: PartSize × S3's part count limit.
	MaxSize int64
	// PartSize is the size of the parts sent to S3 and the memory each
	// PATCH in progress holds. Default DefaultPartSize; between S3's
	// minimum part (5 MiB) and maximum part.
	PartSize int64
	// TTL is how long an upload may be continued after its creation
	// (Upload-Expires). Default DefaultTTL.
	TTL time.Duration
	// LockTimeout is how old a PATCH's lock must be before another
	// request may take it over; it must exceed the time to send one part
	// to S3. Default DefaultLockTimeout.
	LockTimeout time.Duration
	// User returns the id of the request's user ("" for anonymous, which
	// is then the owner). Required.
	User func(*http.Request) string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Tags stores the object's "sha256" (hex) and "size" as object tags
	// after completion, as streamed uploads have them. The SHA-256 state
	// of the parts is kept between requests in sha256-<N> objects under
	// TempPrefix; an object whose state was lost (a request died between
	// a part and its state) or whose tagging failed has no tags.
	Tags bool
	// MaxOpenUploads is how many unfinished, unexpired uploads a user may
	// have; a creation beyond answers 429 (CodeTooManyOpenUploads). 0: no
	// limit. Each upload then also has an open marker under TempPrefix.
	MaxOpenUploads int
	// MemoryLimit bounds the part buffers of all PATCHes in progress
	// together: each holds one PartSize buffer (a second, not counted,
	// only while a staged part is read back from a server without
	// UploadPartCopy). A PATCH that finds none free waits up to
	// MemoryWait, holding its lock, then gets 503 SERVER_BUSY with
	// Retry-After. Default DefaultMemoryLimit; at least PartSize.
	MemoryLimit int64
	MemoryWait  time.Duration
	// Types, if set and not allowing everything, restricts the uploads'
	// content types: the declared type (Upload-Metadata filetype,
	// contentType or type; else application/octet-stream) must be allowed
	// at creation, and the first contenttype.SniffLen bytes are checked
	// with Types.Check once they have arrived (415 either way).
	Types *contenttype.Allowlist
	// OnError, if set, is told about every failure answered with 5xx.
	OnError func(r *http.Request, err error)
	// OnEvent, if set, is told when an upload is created, completed or
	// terminated (for the audit log).
	OnEvent func(r *http.Request, e Event)
}

// Event is a change in an upload's life.
type Event struct {
	Action   string // EventCreated, EventCompleted or EventTerminated
	Key      string // the object key
	UploadID string // S3's multipart upload id
	Size     int64  // the length, when known
}

// Event actions.
const (
	EventCreated    = "created"
	EventCompleted  = "completed"
	EventTerminated = "terminated"
)

func (h *Handler) event(r *http.Request, action string, c claims, size int64) {
	if h.cfg.OnEvent != nil {
		h.cfg.OnEvent(r, Event{Action: action, Key: c.Key, UploadID: c.UploadID, Size: size})
	}
}

// Handler serves tus 1.0 over S3 multipart uploads. It keeps no state
// between requests: every instance with the same Config can continue
// every upload.
type Handler struct {
	cfg    Config
	api    API
	sealer *sealer
	bufs   *partBuffers
}

// New checks cfg, fills in defaults and returns the handler.
func New(api API, cfg Config) (*Handler, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("bucket is required")
	}
	if cfg.User == nil {
		return nil, errors.New("user function is required")
	}
	cfg.TempPrefix = cmp.Or(cfg.TempPrefix, DefaultTempPrefix)
	if !strings.HasSuffix(cfg.TempPrefix, "/") {
		cfg.TempPrefix += "/"
	}
	if cfg.Prefix != "" && (strings.HasPrefix(cfg.Prefix, cfg.TempPrefix) || strings.HasPrefix(cfg.TempPrefix, cfg.Prefix)) {
		return nil, fmt.Errorf("temp prefix %q and prefix %q overlap", cfg.TempPrefix, cfg.Prefix)
	}
	cfg.PartSize = cmp.Or(cfg.PartSize, DefaultPartSize)
	if cfg.PartSize < s3limits.MinPartSize || cfg.PartSize > s3limits.MaxPartSize {
		return nil, fmt.Errorf("part size %d is outside S3's limits [%d, %d]", cfg.PartSize, s3limits.MinPartSize, s3limits.MaxPartSize)
	}
	maxSize := min(cfg.PartSize*s3limits.MaxParts, s3limits.MaxObjectSize)
	cfg.MaxSize = cmp.Or(cfg.MaxSize, maxSize)
	if cfg.MaxSize < 0 || cfg.MaxSize > maxSize {
		return nil, fmt.Errorf("max size %d is outside [0, %d] (part size × %d parts)", cfg.MaxSize, maxSize, s3limits.MaxParts)
	}
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	cfg.LockTimeout = cmp.Or(cfg.LockTimeout, DefaultLockTimeout)
	cfg.MemoryLimit = cmp.Or(cfg.MemoryLimit, DefaultMemoryLimit)
	if cfg.MemoryLimit < cfg.PartSize {
		return nil, fmt.Errorf("memory limit %d is below one part (%d)", cfg.MemoryLimit, cfg.PartSize)
	}
	cfg.MemoryWait = cmp.Or(cfg.MemoryWait, DefaultMemoryWait)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sealer, err := newSealer(cfg.Secrets)
	if err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, api: api, sealer: sealer, bufs: newPartBuffers(cfg.PartSize, cfg.MemoryLimit, cfg.MemoryWait)}, nil
}

// httpError is a failure with its status.
type httpError struct {
	status int
	code   string // if set, the answer is a JSON envelope with this code
	msg    string
	err    error // cause, for 5xx
	// retryAfter, if set, is the Retry-After header's value.
	retryAfter string
}

func (e *httpError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *httpError) Unwrap() error { return e.err }

func fail(status int, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP answers OPTIONS, POST (creation), HEAD, PATCH and DELETE.
// POST may go to any path the handler is routed at; the upload URL is
// that path plus "/" and the sealed upload id, and HEAD, PATCH and DELETE
// take the id from the last path segment.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	if o := r.Header.Get("X-HTTP-Method-Override"); o != "" && r.Method == http.MethodPost {
		method = o
	}
	hdr := w.Header()
	var err error
	if v := InteropVersion(r); v != "" {
		err = h.serveIETF(w, r, method, v)
	} else {
		err = h.serveTus(w, r, method)
	}
	if err == nil {
		return
	}
	he, ok := errors.AsType[*httpError](err)
	if !ok {
		he = &httpError{status: http.StatusInternalServerError, msg: "storage error", err: err}
	}
	if he.status >= 500 && h.cfg.OnError != nil {
		h.cfg.OnError(r, err)
	}
	if he.retryAfter != "" {
		hdr.Set("Retry-After", he.retryAfter)
	}
	if he.code != "" {
		_ = envelope.WriteError(w, he.status, he.code, he.msg)
		return
	}
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(he.status)
	if method != http.MethodHead {
		io.WriteString(w, he.msg+"\n")
	}
}

// serveTus serves a tus 1.0 request.
func (h *Handler) serveTus(w http.ResponseWriter, r *http.Request, method string) error {
	hdr := w.Header()
	hdr.Set("Tus-Resumable", Version)
	if method == http.MethodOptions {
		hdr.Set("Tus-Version", Version)
		hdr.Set("Tus-Extension", Extensions)
		hdr.Set("Tus-Max-Size", strconv.FormatInt(h.cfg.MaxSize, 10))
		hdr.Set("Tus-Checksum-Algorithm", ChecksumAlgorithms)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if v := r.Header.Get("Tus-Resumable"); v != Version {
		hdr.Set("Tus-Version", Version)
		if d := r.Header.Get(InteropHeader); v == "" && d != "" {
			return fail(http.StatusPreconditionFailed, "unsupported %s %q (served: %s) and no Tus-Resumable", InteropHeader, d, strings.Join(InteropVersions, ", "))
		}
		return fail(http.StatusPreconditionFailed, "unsupported Tus-Resumable %q", v)
	}
	switch method {
	case http.MethodPost:
		return h.create(w, r)
	case http.MethodHead:
		return h.head(w, r)
	case http.MethodPatch:
		return h.patch(w, r)
	case http.MethodDelete:
		return h.terminate(w, r)
	}
	hdr.Set("Allow", "OPTIONS, POST, HEAD, PATCH, DELETE")
	return fail(http.StatusMethodNotAllowed, "method %s not allowed", method)
}

// open reads and authorizes the upload the request names.
func (h *Handler) open(r *http.Request) (claims, error) {
	c, err := h.sealer.open(path.Base(r.URL.Path))
	if err != nil {
		return c, fail(http.StatusNotFound, "upload not found")
	}
	if c.Owner != h.cfg.User(r) {
		return c, fail(http.StatusForbidden, "upload belongs to another user")
	}
	if c.expired(h.cfg.Now()) {
		return c, fail(http.StatusGone, "upload expired")
	}
	return c, nil
}

func (h *Handler) setExpires(w http.ResponseWriter, c claims) {
	w.Header().Set("Upload-Expires", time.Unix(c.Expires, 0).UTC().Format(http.TimeFormat))
}

// metadata is a parsed Upload-Metadata header.
type metadata map[string]string

// parseMetadata parses "key base64value,key2" pairs.
func parseMetadata(s string) (metadata, error) {
	m := metadata{}
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for pair := range strings.SplitSeq(s, ",") {
		fields := strings.Fields(pair)
		if len(fields) == 0 || len(fields) > 2 {
			return nil, fmt.Errorf("malformed pair %q", pair)
		}
		key := fields[0]
		if strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
			return nil, fmt.Errorf("key %q is not printable ASCII", key)
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("key %q repeated", key)
		}
		v := ""
		if len(fields) == 2 {
			b, err := base64.StdEncoding.Strict().DecodeString(fields[1])
			if err != nil {
				return nil, fmt.Errorf("value of %q: %v", key, err)
			}
			v = string(b)
		}
		m[key] = v
	}
	return m, nil
}

// declaredType is the declared type of the file, "" if none.
func (m metadata) declaredType() string {
	for _, k := range []string{"filetype", "contentType", "type"} {
		if v := m[k]; v != "" {
			if mt, params, err := mime.ParseMediaType(v); err == nil {
				return mime.FormatMediaType(mt, params)
			}
		}
	}
	return ""
}

func (m metadata) fileName() string { return cmp.Or(m["filename"], m["name"]) }

func parseLength(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("%q is not a non-negative integer", s)
	}
	return n, nil
}

// create handles POST: creation, creation-defer-length and
// creation-with-upload.
func (h *Handler) create(w http.ResponseWriter, r *http.Request) error {
	c := claims{Owner: h.cfg.User(r), Length: -1}
	lengthHdr, deferHdr := r.Header.Get("Upload-Length"), r.Header.Get("Upload-Defer-Length")
	switch {
	case lengthHdr != "" && deferHdr != "":
		return fail(http.StatusBadRequest, "Upload-Length and Upload-Defer-Length are exclusive")
	case deferHdr != "":
		if deferHdr != "1" {
			return fail(http.StatusBadRequest, "Upload-Defer-Length must be 1")
		}
	case lengthHdr != "":
		n, err := parseLength(lengthHdr)
		if err != nil {
			return fail(http.StatusBadRequest, "Upload-Length: %v", err)
		}
		c.Length = n
	default:
		return fail(http.StatusBadRequest, "Upload-Length or Upload-Defer-Length is required")
	}
	if c.Length > h.cfg.MaxSize {
		return fail(http.StatusRequestEntityTooLarge, "Upload-Length exceeds Tus-Max-Size %d", h.cfg.MaxSize)
	}
	withBody := r.ContentLength > 0 || r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody
	var sum *checksum
	if withBody {
		if !isOffsetType(r.Header.Get("Content-Type")) {
			return fail(http.StatusUnsupportedMediaType, "a body sent with creation must be %s", OffsetContentType)
		}
		var err error
		if sum, err = parseChecksum(r.Header.Get("Upload-Checksum")); err != nil {
			return err
		}
	}
	c.Metadata = r.Header.Get("Upload-Metadata")
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s3Timeout)
	defer cancel()
	c, err := h.begin(ctx, w, r, c, "Upload-Metadata")
	if err != nil {
		return err
	}
	h.setExpires(w, c)
	if !withBody || c.Length == 0 {
		w.WriteHeader(http.StatusCreated)
		return nil
	}
	offset, err := h.write(ctx, r, h.store(c), state{length: c.Length}, sum)
	he, _ := errors.AsType[*httpError](err)
	switch {
	case he != nil && he.status == StatusChecksumMismatch:
		// The upload exists (Location is set) but holds nothing.
		return he
	case he != nil && he.status == http.StatusUnsupportedMediaType:
		// The content was refused and the upload removed.
		w.Header().Del("Location")
		w.Header().Del("Upload-Expires")
		return he
	case err != nil && !errors.Is(err, errLocked) && h.cfg.OnError != nil:
		// The upload exists: the client may resume it from HEAD.
		h.cfg.OnError(r, err)
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(offset, 10))
	w.WriteHeader(http.StatusCreated)
	return nil
}

// begin creates the upload c describes (Owner, Length and Metadata set)
// after the metadata (named what in messages), content type and quota
// checks: a multipart upload with its open marker, or the empty object
// when the length is 0. It sets Location to the upload's URL, and returns
// the claims with Key, Expires and UploadID filled in.
func (h *Handler) begin(ctx context.Context, w http.ResponseWriter, r *http.Request, c claims, what string) (claims, error) {
	if len(c.Metadata) > maxMetadataLen {
		return c, fail(http.StatusRequestHeaderFieldsTooLarge, "%s is longer than %d bytes", what, maxMetadataLen)
	}
	meta, err := parseMetadata(c.Metadata)
	if err != nil {
		return c, fail(http.StatusBadRequest, "%s: %v", what, err)
	}
	declared := meta.declaredType()
	if !h.cfg.Types.AllowsAll() {
		if !h.cfg.Types.Allows(declared) {
			return c, unsupportedType("the declared type %q is not allowed", declared)
		}
		if c.Length == 0 {
			if _, err := h.cfg.Types.Check(declared, nil); err != nil {
				return c, unsupportedType("an empty file is refused: %v", err)
			}
		}
		if declared == "" {
			declared = "application/octet-stream"
		}
	}
	var contentType *string
	if declared != "" {
		contentType = aws.String(declared)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	c.Key = h.cfg.Prefix + hex.EncodeToString(id)
	c.Expires = h.cfg.Now().Add(h.cfg.TTL).Unix()

	userMeta := map[string]string{s3limits.MetaUploadedBy: objectkey.MetadataValue(c.Owner)}
	if name := meta.fileName(); name != "" {
		userMeta[s3limits.MetaOriginalName] = objectkey.MetadataValue(name)
	}
	// The upload URL carries the claims: refuse what would not fit before
	// anything is stored (S3 upload ids are far shorter than this one).
	longest := c
	longest.UploadID = strings.Repeat("x", 512)
	if len(h.sealer.seal(longest)) > maxTokenLen {
		return c, fail(http.StatusRequestHeaderFieldsTooLarge, "the upload's metadata does not fit in its URL")
	}
	if c.Length != 0 {
		if err := h.checkQuota(ctx, c.Owner); err != nil {
			return c, err
		}
	}
	mode, keyID, bucketKey, encCtx := h.cfg.Encryption.RequestFields()
	if c.Length == 0 {
		// Nothing to resume: store the empty object now.
		in := &s3.PutObjectInput{Bucket: &h.cfg.Bucket, Key: &c.Key, Body: strings.NewReader(""), ContentLength: aws.Int64(0),
			ContentType: contentType, Metadata: userMeta, ServerSideEncryption: mode, SSEKMSKeyId: keyID, BucketKeyEnabled: bucketKey, SSEKMSEncryptionContext: encCtx}
		if h.cfg.Tags {
			empty := sha256.Sum256(nil)
			in.Tagging = aws.String("sha256=" + hex.EncodeToString(empty[:]) + "&size=0")
		}
		if _, err := h.api.PutObject(ctx, in); err != nil {
			return c, fmt.Errorf("storing an empty upload: %w", err)
		}
	} else {
		out, err := h.api.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &h.cfg.Bucket, Key: &c.Key,
			ContentType: contentType, Metadata: userMeta, ServerSideEncryption: mode, SSEKMSKeyId: keyID, BucketKeyEnabled: bucketKey, SSEKMSEncryptionContext: encCtx})
		if err != nil {
			return c, fmt.Errorf("creating the multipart upload: %w", err)
		}
		c.UploadID = aws.ToString(out.UploadId)
		s := h.store(c)
		if err := s.markOpen(ctx); err != nil {
			// The marker may exist (its answer lost): remove both.
			_ = s.abort(ctx)
			_, _ = s.deleteTemp(ctx)
			return c, err
		}
	}
	w.Header().Set("Location", strings.TrimSuffix(r.URL.Path, "/")+"/"+h.sealer.seal(c))
	h.event(r, EventCreated, c, c.Length)
	if c.Length == 0 {
		h.event(r, EventCompleted, c, 0)
	}
	return c, nil
}

func isOffsetType(v string) bool {
	mt, _, err := mime.ParseMediaType(v)
	return err == nil && mt == OffsetContentType
}

// headProgress reads the progress of r's upload and sets the headers both
// protocols answer HEAD with: no caching, the offset S3 holds, and the
// length when it is known.
//
// An upload whose bytes are all in S3 but which was not completed (the
// request that sent the last byte died, or completing failed) is
// completed here: clients that see offset == length send nothing more.
func (h *Handler) headProgress(w http.ResponseWriter, r *http.Request) (claims, state, error) {
	c, err := h.open(r)
	if err != nil {
		return c, state{}, err
	}
	s := h.store(c)
	st, err := s.state(r.Context())
	if errors.Is(err, errGone) {
		return c, st, fail(http.StatusNotFound, "upload not found")
	}
	if err != nil {
		return c, st, err
	}
	if !st.done && st.length >= 0 && st.offset() == st.length {
		if err := h.finish(r, s); err != nil && !errors.Is(err, errLocked) {
			return c, st, err
		}
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Upload-Offset", strconv.FormatInt(st.offset(), 10))
	if st.length >= 0 {
		hdr.Set("Upload-Length", strconv.FormatInt(st.length, 10))
	}
	return c, st, nil
}

// head handles HEAD: the offset S3 holds.
func (h *Handler) head(w http.ResponseWriter, r *http.Request) error {
	c, st, err := h.headProgress(w, r)
	if err != nil {
		return err
	}
	hdr := w.Header()
	if st.length < 0 {
		hdr.Set("Upload-Defer-Length", "1")
	}
	if c.Metadata != "" {
		hdr.Set("Upload-Metadata", c.Metadata)
	}
	h.setExpires(w, c)
	w.WriteHeader(http.StatusOK)
	return nil
}

// patch handles PATCH: appends the body at Upload-Offset.
func (h *Handler) patch(w http.ResponseWriter, r *http.Request) error {
	if !isOffsetType(r.Header.Get("Content-Type")) {
		return fail(http.StatusUnsupportedMediaType, "Content-Type must be %s", OffsetContentType)
	}
	offset, err := parseLength(r.Header.Get("Upload-Offset"))
	if err != nil {
		return fail(http.StatusBadRequest, "Upload-Offset: %v", err)
	}
	sum, err := parseChecksum(r.Header.Get("Upload-Checksum"))
	if err != nil {
		return err
	}
	var newLength int64 = -1
	if v := r.Header.Get("Upload-Length"); v != "" {
		if newLength, err = parseLength(v); err != nil {
			return fail(http.StatusBadRequest, "Upload-Length: %v", err)
		}
	}
	c, err := h.open(r)
	if err != nil {
		return err
	}
	newOffset, _, err := h.appendAt(w, r, c, offset, newLength, sum, false)
	if err != nil {
		return err
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(newOffset, 10))
	h.setExpires(w, c)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// errUploadComplete answers a PATCH to a completed upload.
var errUploadComplete = &httpError{status: http.StatusConflict, msg: "upload is complete"}

// appendAt appends the request body to the upload c at offset, holding
// its lock, and returns the new offset. newLength, if not -1, is the
// upload's length as the request declares it (set if it was deferred).
// With completeAtEnd (IETF Upload-Complete: ?1 with a body of unknown
// length), a deferred length is set to the offset the body ends at, if
// it arrived whole, and the upload is completed. A wrong offset answers
// 409 with the real Upload-Offset; a completed upload errUploadComplete,
// also with Upload-Offset.
func (h *Handler) appendAt(w http.ResponseWriter, r *http.Request, c claims, offset, newLength int64, sum *checksum, completeAtEnd bool) (newOffset, length int64, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s3Timeout)
	defer cancel()
	s := h.store(c)
	l, err := s.acquire(ctx, h.cfg.LockTimeout, h.cfg.Now)
	if errors.Is(err, errLocked) {
		return 0, -1, fail(http.StatusConflict, "another request is writing to this upload")
	}
	if err != nil {
		return 0, -1, err
	}
	defer l.release(ctx)
	st, err := s.state(ctx)
	switch {
	case errors.Is(err, errGone):
		return 0, -1, fail(http.StatusNotFound, "upload not found")
	case err != nil:
		return 0, -1, err
	case st.done:
		w.Header().Set("Upload-Offset", strconv.FormatInt(st.offset(), 10))
		return 0, -1, errUploadComplete
	case offset != st.offset():
		w.Header().Set("Upload-Offset", strconv.FormatInt(st.offset(), 10))
		return 0, -1, fail(http.StatusConflict, "Upload-Offset %d does not match the upload's offset %d", offset, st.offset())
	}
	if newLength >= 0 {
		switch {
		case st.length >= 0 && newLength != st.length:
			return 0, -1, fail(http.StatusBadRequest, "Upload-Length %d differs from the upload's length %d", newLength, st.length)
		case st.length < 0 && newLength < offset:
			return 0, -1, fail(http.StatusBadRequest, "Upload-Length %d is below the offset %d", newLength, offset)
		case st.length < 0 && newLength > h.cfg.MaxSize:
			return 0, -1, fail(http.StatusRequestEntityTooLarge, "Upload-Length exceeds the maximum size %d", h.cfg.MaxSize)
		case st.length < 0:
			if err := s.setLength(ctx, newLength); err != nil {
				return 0, -1, err
			}
			st.length = newLength
		}
	}
	if st.length >= 0 && r.ContentLength > st.length-offset {
		return 0, -1, fail(http.StatusRequestEntityTooLarge, "body exceeds the upload's length by %d bytes", r.ContentLength-(st.length-offset))
	}
	if st.length < 0 && r.ContentLength > h.cfg.MaxSize-offset {
		return 0, -1, fail(http.StatusRequestEntityTooLarge, "body exceeds the maximum size %d", h.cfg.MaxSize)
	}
	var rec *errRecorder
	if completeAtEnd && st.length < 0 {
		rec = &errRecorder{r: r.Body}
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(rec) // the server closes the original
	}
	newOffset, err = h.writeLocked(ctx, r, s, l, st, sum)
	if errors.Is(err, errLocked) {
		return newOffset, st.length, fail(http.StatusConflict, "another request took over this upload")
	}
	if err != nil || rec == nil || rec.err != nil {
		return newOffset, st.length, err
	}
	// The body arrived whole and ends the upload: its length is now known.
	if err := s.setLength(ctx, newOffset); err != nil {
		if errors.Is(err, errLocked) {
			return newOffset, -1, fail(http.StatusConflict, "the upload's length was set by another request")
		}
		return newOffset, -1, err
	}
	if st, err = s.state(ctx); err != nil {
		return newOffset, newOffset, err
	}
	r = r.Clone(ctx)
	r.Body, r.ContentLength = http.NoBody, 0
	newOffset, err = h.writeLocked(ctx, r, s, l, st, nil)
	return newOffset, st.length, err
}

// write takes the lock of a new upload and appends the body
// (creation-with-upload).
func (h *Handler) write(ctx context.Context, r *http.Request, s *store, st state, sum *checksum) (int64, error) {
	l, err := s.acquire(ctx, h.cfg.LockTimeout, h.cfg.Now)
	if err != nil {
		return 0, err
	}
	defer l.release(ctx)
	return h.writeLocked(ctx, r, s, l, st, sum)
}

// writeLocked appends the request body to the upload whose state is st,
// holding l: full parts go to S3 as they fill, the rest to the tail, and
// the upload is completed when its length is reached. It returns the new
// offset, also when the body breaks off (what arrived is kept). With a
// checksum (sum not nil), nothing of the body counts until all of it has
// arrived and matched: see stageBody.
func (h *Handler) writeLocked(ctx context.Context, r *http.Request, s *store, l *lock, st state, sum *checksum) (int64, error) {
	buf, err := h.bufs.get(r.Context())
	if err != nil {
		return st.offset(), err
	}
	defer h.bufs.put(buf)
	var body io.Reader = r.Body
	var capped *maxReader // a deferred length: the body may not pass MaxSize
	if st.length >= 0 {
		body = io.LimitReader(r.Body, st.length-st.offset())
	} else {
		capped = &maxReader{r: r.Body, n: h.cfg.MaxSize - st.offset()}
		body = capped
	}
	// buf holds the tail, then the body's bytes; saved of them are in S3
	// as the tail object tail-<pe>.
	pe, filled, saved := st.partsEnd, int(st.tail), int(st.tail)
	if saved > 0 {
		if err := s.readObject(ctx, s.tailKey(pe), buf[:filled]); err != nil {
			return st.offset(), err
		}
	}
	parts := st.parts
	sniff := h.needSniff(st)
	// objSum is the SHA-256 of the bytes before pe, for the object's
	// sha256 tag; nil when tags are off or its state was lost.
	var objSum hash.Hash
	if h.cfg.Tags {
		if objSum, err = s.loadHash(ctx, pe); err != nil {
			return st.offset(), err
		}
	}
	// addPart adds the part put stores as the upload's next one, within
	// S3's part count, and drops the tail object and hash state it
	// replaces (see dropBefore).
	addPart := func(put func(num int32) (types.CompletedPart, error)) error {
		if len(parts) >= s3limits.MaxParts {
			return fail(http.StatusRequestEntityTooLarge, "upload has reached S3's limit of %d parts", s3limits.MaxParts)
		}
		p, err := put(int32(len(parts) + 1))
		if err != nil {
			return err
		}
		parts = append(parts, p)
		s.dropBefore(ctx, pe, saved > 0, objSum != nil)
		return nil
	}
	if sum != nil {
		staged, states, n, err := h.stageBody(ctx, r, body, s, l, st, buf, sum, objSum)
		defer func() { _ = s.deleteKeys(ctx, staged) }()
		if err != nil {
			return st.offset(), err
		}
		// The body matched: copy the staged parts into the upload.
		for _, key := range staged {
			err := addPart(func(num int32) (types.CompletedPart, error) {
				if err := l.hold(ctx); err != nil {
					return types.CompletedPart{}, err
				}
				if objSum != nil {
					s.saveHash(ctx, pe+int64(len(buf)), states[len(parts)-len(st.parts)])
				}
				p, err := s.copyPart(ctx, num, key)
				if copyUnsupported(err) {
					p, err = h.reuploadPart(ctx, s, num, key)
				}
				return p, err
			})
			if err != nil {
				return pe + int64(saved), err
			}
			pe, saved = pe+int64(len(buf)), 0
		}
		filled, body = n, http.NoBody
	}
	for {
		// A body that breaks off is no error of the upload: what arrived
		// is kept, and the offset tells the client where to resume.
		n, _ := io.ReadFull(body, buf[filled:])
		filled += n
		end := pe + int64(filled)
		last := st.length >= 0 && end == st.length
		full := filled == len(buf)
		if filled == saved && !full && !last {
			// Nothing new (the body ended or broke off at a part boundary).
			return end, capped.check(h.cfg.MaxSize)
		}
		if last && n > 0 && r.ContentLength < 0 {
			// A body of unknown length must end at the declared length.
			if bodyContinues(r.Body) {
				return pe + int64(saved), fail(http.StatusRequestEntityTooLarge, "body exceeds the upload's length")
			}
		}
		if sniff && pe == 0 && (filled >= contenttype.SniffLen || last) {
			if err := h.sniff(ctx, r, s, buf[:min(filled, contenttype.SniffLen)]); err != nil {
				return 0, err
			}
			sniff = false
		}
		if err := l.hold(ctx); err != nil {
			return pe + int64(saved), err
		}
		switch {
		case last && filled == 0 && len(parts) > 0:
			// A deferred length set at the offset already reached.
		case full || last || int64(filled) >= s3limits.MinPartSize:
			err := addPart(func(num int32) (types.CompletedPart, error) {
				if objSum != nil {
					objSum.Write(buf[:filled])
					s.saveHash(ctx, end, marshalHash(objSum))
				}
				return s.uploadPart(ctx, num, buf[:filled])
			})
			if err != nil {
				return pe + int64(saved), err
			}
			pe, filled, saved = end, 0, 0
		default:
			if err := s.put(ctx, s.tailKey(pe), buf[:filled], false, "writing the tail"); err != nil {
				return pe + int64(saved), err
			}
			saved = filled
		}
		if last {
			if err := s.complete(ctx, parts); err != nil && !s.completed(ctx) {
				return end - 1, err
			}
			if objSum != nil {
				if err := s.tag(ctx, hex.EncodeToString(objSum.Sum(nil)), end); err != nil && h.cfg.OnError != nil {
					h.cfg.OnError(r, err) // the object is stored; only its tags are missing
				}
			}
			_, _ = s.deleteTemp(ctx)
			h.event(r, EventCompleted, s.c, end)
			return end, nil
		}
		if !full {
			return end, capped.check(h.cfg.MaxSize)
		}
	}
}

// maxReader reads at most n bytes of r, then notes whether r had more.
type maxReader struct {
	r    io.Reader
	n    int64
	over bool
}

func (m *maxReader) Read(p []byte) (int, error) {
	if m.n <= 0 {
		var extra [1]byte
		k, err := m.r.Read(extra[:])
		if k > 0 {
			m.over = true
			return 0, io.EOF
		}
		return 0, err
	}
	if int64(len(p)) > m.n {
		p = p[:m.n]
	}
	k, err := m.r.Read(p)
	m.n -= int64(k)
	return k, err
}

// isOver reports whether body is a maxReader that went past its bound.
func isOver(body io.Reader) bool {
	m, ok := body.(*maxReader)
	return ok && m.over
}

// check answers 413 if the body went past max; m may be nil.
func (m *maxReader) check(max int64) error {
	if m != nil && m.over {
		return fail(http.StatusRequestEntityTooLarge, "body exceeds the maximum size %d; the bytes up to it are kept", max)
	}
	return nil
}

// codeUnsupportedType is the JSON error code of a refused content type,
// as streamed uploads answer it.
const codeUnsupportedType = "UNSUPPORTED_MEDIA_TYPE"

func unsupportedType(format string, args ...any) *httpError {
	return &httpError{status: http.StatusUnsupportedMediaType, code: codeUnsupportedType, msg: fmt.Sprintf(format, args...)}
}

// needSniff reports whether the upload's first bytes, of which st holds
// only a tail, have yet to be checked against Types: they are checked
// once contenttype.SniffLen of them (or all, if the upload is shorter)
// are in the buffer, before any of them is stored beyond a tail.
func (h *Handler) needSniff(st state) bool {
	return !h.cfg.Types.AllowsAll() && st.partsEnd == 0 && st.tail < contenttype.SniffLen
}

// sniff checks the upload's first bytes against Types and the declared
// type; a refused upload is terminated (aborted, its temporary objects
// and open marker removed) and answered 415.
func (h *Handler) sniff(ctx context.Context, r *http.Request, s *store, head []byte) error {
	meta, _ := parseMetadata(s.c.Metadata)
	_, err := h.cfg.Types.Check(meta.declaredType(), head)
	if err == nil {
		return nil
	}
	if aerr := s.abort(ctx); aerr == nil || errors.Is(aerr, errGone) {
		_, _ = s.deleteTemp(ctx)
		h.event(r, EventTerminated, s.c, s.c.Length)
	} else if h.cfg.OnError != nil {
		h.cfg.OnError(r, aerr)
	}
	return unsupportedType("the file's content is refused (%v); the upload was terminated", err)
}

// marshalHash returns the state of a SHA-256 hash.
func marshalHash(h hash.Hash) []byte {
	b, _ := h.(encoding.BinaryMarshaler).MarshalBinary() // crypto/sha256 cannot fail
	return b
}

// copyUnsupported reports whether S3 refused UploadPartCopy as not
// implemented (SeaweedFS does for some sources).
func copyUnsupported(err error) bool {
	return err != nil && (awserr.Code(err) == "NotImplemented" || awserr.Status(err) == http.StatusNotImplemented)
}

// reuploadPart makes the staged object key part n by reading it back
// through the gateway, for S3 servers without UploadPartCopy; it holds a
// second PartSize buffer meanwhile.
func (h *Handler) reuploadPart(ctx context.Context, s *store, n int32, key string) (types.CompletedPart, error) {
	b := h.bufs.take()
	defer h.bufs.keep(b)
	if err := s.readObject(ctx, key, b); err != nil {
		return types.CompletedPart{}, err
	}
	return s.uploadPart(ctx, n, b)
}

// bodyContinues reports whether a byte follows in body.
func bodyContinues(body io.Reader) bool {
	var extra [1]byte
	m, _ := io.ReadFull(body, extra[:])
	return m > 0
}

// errRecorder remembers the first error other than io.EOF its reader
// returned: a body that broke off.
type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// stageBody reads the whole body of a request with Upload-Checksum into
// buf after the tail's st.tail bytes, checking it against sum. Whenever
// buf fills and more follows, buf is stored as a staged object
// (stage-<offset of its first byte>), which the offset does not count. It
// returns the staged objects' keys, which the caller copies into parts
// only if the body matched and then deletes, and the bytes left in buf.
// If objSum is not nil, the staged parts are added to it, and states has
// its state after each.
func (h *Handler) stageBody(ctx context.Context, r *http.Request, body io.Reader, s *store, l *lock, st state, buf []byte, sum *checksum, objSum hash.Hash) (staged []string, states [][]byte, filled int, err error) {
	rec := &errRecorder{r: body}
	in := io.TeeReader(rec, sum.hash)
	filled = int(st.tail)
	for {
		n, _ := io.ReadFull(in, buf[filled:])
		filled += n
		if filled < len(buf) {
			break
		}
		var next [1]byte
		if m, _ := io.ReadFull(in, next[:]); m == 0 {
			break
		}
		if len(staged) == 0 && h.needSniff(st) {
			if err := h.sniff(ctx, r, s, buf[:contenttype.SniffLen]); err != nil {
				return staged, nil, 0, err
			}
		}
		if err := l.hold(ctx); err != nil {
			return staged, nil, 0, err
		}
		key := s.stageKey(st.partsEnd + int64(len(staged))*int64(len(buf)))
		if err := s.put(ctx, key, buf, false, "staging a part"); err != nil {
			return staged, nil, 0, err
		}
		staged = append(staged, key)
		if objSum != nil {
			objSum.Write(buf)
			states = append(states, marshalHash(objSum))
		}
		buf[0], filled = next[0], 1
	}
	end := st.partsEnd + int64(len(staged))*int64(len(buf)) + int64(filled)
	switch {
	case rec.err != nil:
		return staged, nil, 0, fail(http.StatusBadRequest, "the body broke off before its Upload-Checksum could be verified: none of it was stored")
	case isOver(body):
		return staged, nil, 0, fail(http.StatusRequestEntityTooLarge, "body exceeds the maximum size %d: none of it was stored", h.cfg.MaxSize)
	case st.length >= 0 && end == st.length && r.ContentLength < 0 && bodyContinues(r.Body):
		return staged, nil, 0, fail(http.StatusRequestEntityTooLarge, "body exceeds the upload's length")
	case !sum.matches():
		return staged, nil, 0, fail(StatusChecksumMismatch, "the body does not match its Upload-Checksum (%s): none of it was stored", sum.alg)
	}
	return staged, states, filled, nil
}

// finish completes an upload all of whose bytes are in S3, holding its
// lock (errLocked if another request holds it).
func (h *Handler) finish(r *http.Request, s *store) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s3Timeout)
	defer cancel()
	l, err := s.acquire(ctx, h.cfg.LockTimeout, h.cfg.Now)
	if err != nil {
		return err
	}
	defer l.release(ctx)
	st, err := s.state(ctx)
	if err != nil || st.done || st.length < 0 || st.offset() != st.length {
		return err
	}
	r = r.Clone(ctx)
	r.Body, r.ContentLength = http.NoBody, 0
	_, err = h.writeLocked(ctx, r, s, l, st, nil)
	return err
}

// terminate handles DELETE: removes the multipart upload and its
// temporary objects.
func (h *Handler) terminate(w http.ResponseWriter, r *http.Request) error {
	c, err := h.open(r)
	if err != nil {
		return err
	}
	if c.UploadID == "" {
		return fail(http.StatusNotFound, "upload not found")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s3Timeout)
	defer cancel()
	s := h.store(c)
	err = s.abort(ctx)
	if errors.Is(err, errGone) {
		_, _ = s.deleteTemp(ctx)
		return fail(http.StatusNotFound, "upload not found")
	}
	if err != nil {
		return err
	}
	if _, err := s.deleteTemp(ctx); err != nil {
		return err
	}
	h.event(r, EventTerminated, c, c.Length)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
