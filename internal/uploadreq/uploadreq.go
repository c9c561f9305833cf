// Package uploadreq is one streaming upload request, without Caddy: it
// stores the files of a multipart form or a raw body in S3 (through
// internal/formstream and an [Uploader], usually *s3stream.Uploader),
// builds each object's key and metadata from templates, and then either
// answers with JSON describing the stored files or passes the request on
// with every file replaced by fields (and a signature), deleting the
// objects again when the next handler fails. It also maps every failure to
// the status, code and message the client gets ([Config.Classify]) and
// fills the request's [metrics.Outcome]. Before anything is read,
// [Request.Authorize] decides whether the request's identity may upload
// (allowed roles, anonymous uploads), and [Request.Client] names its client
// for the per-client limits.
//
// The Caddy handler (module/gateway) provides the configuration, which
// [Config.Validate] checks and [Config.Prepare] completes, the request's
// placeholders ([Placeholders], Caddy's replacer), the memory account and
// the next handler.
package uploadreq

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/passfields"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"
)

// Placeholders are the request's named values: Caddy's replacer. The
// upload.* placeholders are set on it for each file, and
// http.upload_gateway.* once the files are stored.
type Placeholders interface {
	Set(name string, value any)
	GetString(name string) (string, bool)
	ReplaceAll(input, empty string) string
	// ReplaceKey expands an object key template, with every
	// {http.auth.user.*} value escaped to one key segment.
	ReplaceKey(template string) (string, error)
}

// Uploader stores and deletes objects; *s3stream.Uploader is one.
type Uploader interface {
	Upload(ctx context.Context, obj s3stream.Object, body io.Reader) (*s3stream.Result, error)
	Delete(ctx context.Context, bucket, key, versionID string) error
	MaxObjectSize(maxSize int64) int64
}

var _ Uploader = (*s3stream.Uploader)(nil)

// Config is the handler's configuration, with defaults applied.
type Config struct {
	Route          string
	Bucket         string
	Prefix         string
	Key            string // the object key template, below Prefix
	FilenameHeader string
	MaxFileSize    int64
	Form           formstream.Limits // files, fields and form bytes
	Metadata       map[string]string // name → value template
	ClientMetadata bool              // accept X-Upload-Meta-* headers
	Pass           bool              // pass the request on instead of answering
	PassFields     []formstream.Field
	PassStyle      string   // how {upload.field}.<attr> names are written (passfields.StyleDotted, …)
	PassFormFields []string // expressions of the plain fields passed on; none for all
	SignatureField string   // the pass signature's field name template; "" for none
	SignatureKey   []byte
	RollbackOn     []int    // upstream statuses (4 and 5 for classes) that roll back
	AllowedRoles   []string // roles that may upload; empty for admin and uploader
	AllowAnonymous bool     // requests without an identity may upload

	AllowedTypes        []string // content types accepted: Prepare builds Allowlist
	MaxUploadsPerClient int
	ReadTimeout         time.Duration
	MinRate             int64
	MemoryWait          time.Duration

	Allowlist *contenttype.Allowlist
	Uploader  Uploader
	Logger    *zap.Logger

	// Set by Prepare.
	passForm           *regexp.Regexp // PassFormFields compiled; nil for all
	passMD5, passCRC32 bool           // a pass field uses {upload.md5}, {upload.crc32}
}

// File describes a stored file to clients.
type File struct {
	Field       string `json:"field"`
	FileName    string `json:"fileName"`
	S3Key       string `json:"s3Key"`
	Bucket      string `json:"bucket"`
	Size        int64  `json:"size"`
	ContentType string `json:"contentType"`
	ETag        string `json:"etag"`
	VersionID   string `json:"versionId,omitempty"`
	// Checksum is the object's checksum as S3 stores it (base64), of
	// the algorithm ChecksumAlgorithm.
	Checksum          string `json:"checksum,omitempty"`
	ChecksumAlgorithm string `json:"checksumAlgorithm,omitempty"`
	// SHA256 is set with hash sha256 only.
	SHA256 string `json:"sha256,omitempty"`

	uploadID string
	parts    int
}

// Request is the state of one upload request.
type Request struct {
	c     *Config
	r     *http.Request
	ph    Placeholders
	acct  *s3stream.Account // the request's share of memory_limit
	body  *bodyReader       // nil until Store
	files []*File
	start time.Time
	out   metrics.Outcome

	form     *bytes.Buffer        // the rewritten form, in pass mode
	reserved *formstream.Reserved // in pass mode: names a client's field may not take (see reservedNames)
	indexes  passfields.Counter   // {upload.index} per form field name
	index    int                  // {upload.index} of the file being stored
	formType string

	rolledBack bool
	failed     bool // answered with an error by Fail
}

// New starts a request.
func (c *Config) New(r *http.Request, ph Placeholders) *Request {
	return &Request{c: c, r: r, ph: ph, start: time.Now(),
		out: metrics.Outcome{Route: c.Route, Endpoint: "upload", Action: "upload"}}
}

// Outcome is what the request did so far; complete once it is answered.
func (q *Request) Outcome() metrics.Outcome {
	o := q.out
	o.Duration = time.Since(q.start)
	role, _ := q.ph.GetString("http.auth.user.role")
	o.Role = cmp.Or(role, "anonymous")
	if q.failed {
		return o // nothing counts as stored
	}
	for _, f := range q.files {
		o.Bytes += f.Size
		o.Parts += f.parts
	}
	o.Files = len(q.files)
	if len(q.files) > 0 {
		o.Key, o.UploadID = q.files[0].S3Key, q.files[0].uploadID
	}
	o.Result = cmp.Or(o.Result, metrics.ResultOK)
	return o
}

// Store reads the request body, charging what it keeps in memory to acct,
// and streams every file to S3. On success it sets the
// http.upload_gateway.* placeholders.
func (q *Request) Store(acct *s3stream.Account) error {
	q.acct = acct
	q.body = &bodyReader{ReadCloser: q.r.Body}
	q.r.Body = q.body
	ct := q.r.Header.Get("Content-Type")
	var err error
	if IsMultipart(q.r) {
		err = q.storeForm(ct)
	} else {
		_, err = q.upload(q.r.Context(), "", q.rawFileName(), ct, q.r.ContentLength, q.r.Body)
	}
	if err != nil {
		return err
	}
	q.setPlaceholders()
	return nil
}

func (q *Request) storeForm(contentType string) error {
	boundary, err := formstream.Boundary(contentType)
	if err != nil {
		return err
	}
	var mw *multipart.Writer
	lim := q.c.Form
	if q.acct != nil {
		lim.Reserve = q.reserveForm
	}
	if q.c.Pass {
		// A fresh random boundary: values the client chose (file names)
		// can then never close a part and forge another one.
		q.form = new(bytes.Buffer)
		mw = multipart.NewWriter(q.form)
		// The app trusts the fields the gateway writes; a client must not
		// be able to send fields that look like them. Checked as each field
		// arrives, so that no later file is stored, and once more at the end
		// against the fields written for files that came after it.
		q.reserved = q.c.reservedNames()
		lim.Pass = q.c.passesField
		lim.CheckName = q.checkReserved
	}
	res, err := formstream.Rewrite(q.r.Context(), q.r.Body, boundary, lim, q.storeFile, mw)
	if err != nil {
		return err
	}
	if mw == nil {
		return nil
	}
	for _, f := range res.Fields {
		if err := q.checkReserved(f.Name); err != nil {
			return err
		}
	}
	if err := mw.Close(); err != nil {
		return err
	}
	q.formType = mw.FormDataContentType()
	return nil
}

// checkReserved refuses a plain field named like a field the gateway
// writes. A field that is not forwarded cannot pass for the gateway's.
func (q *Request) checkReserved(name string) error {
	if q.c.passesField(name) && q.reserved.Match(name) {
		return fmt.Errorf("%w: %q", ErrReservedField, name)
	}
	return nil
}

// reserveForm takes n bytes of memory_limit for the form. While it waits,
// it reads a little of the body ahead (at most formProbeMax bytes, outside
// the budget), as the uploader does: a client that has gone is noticed then
// (an HTTP/1.1 request's context is not cancelled while its body is being
// read), and the wait ends with its read error instead of holding a place
// in the queue until memory_wait.
func (q *Request) reserveForm(ctx context.Context, n int64) error {
	if q.acct.TryAcquire(n) {
		return nil
	}
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan error, 1)
	go func() { got <- q.acct.Acquire(waitCtx, n) }()
	for {
		select {
		case err := <-got:
			return err
		default:
		}
		more, err := q.body.readAhead(formProbeMax)
		if err != nil {
			cancel()
			<-got // what it took, if anything, goes back when the request ends
			return fmt.Errorf("%w: %w", formstream.ErrRead, err)
		}
		if !more {
			return <-got
		}
	}
}

// formProbeMax is how many body bytes a form waiting for memory reads ahead.
const formProbeMax = 4 << 10

// storeFile stores one file part and returns the fields replacing it.
func (q *Request) storeFile(ctx context.Context, f *formstream.File) ([]formstream.Field, error) {
	q.index = q.indexes.Next(f.Field)
	var digests *passfields.Digests
	if q.c.Pass {
		digests = passfields.NewDigests(q.c.passMD5, q.c.passCRC32)
	}
	info, err := q.upload(ctx, f.Field, f.FileName, f.ContentType, -1, digests.Reader(f.Body))
	if err != nil || !q.c.Pass {
		return nil, err
	}
	q.setFilePlaceholders(info)
	q.ph.Set("upload.md5", digests.MD5())
	q.ph.Set("upload.crc32", digests.CRC32())
	fields := make([]formstream.Field, 0, len(q.c.PassFields)+1)
	for _, pf := range q.c.PassFields {
		fields = append(fields, formstream.Field{
			Name:  q.passFieldName(pf.Name, f.Field),
			Value: q.ph.ReplaceAll(pf.Value, ""),
		})
	}
	if q.c.SignatureField != "" {
		fields = append(fields, formstream.Field{
			Name:  q.passFieldName(q.c.SignatureField, f.Field),
			Value: passSignature(q.c.SignatureKey, f.Field, fields),
		})
	}
	passfields.ReserveWritten(q.reserved, f.Field, fields)
	return fields, nil
}

// passFieldName expands the name template of a pass field for the file in
// field: "{upload.field}.<attr>" is named in pass_field_style (nested for
// a field name with brackets), anything else is expanded as written. Names
// become part headers: no control characters in them.
func (q *Request) passFieldName(tmpl, field string) string {
	if attr, ok := passfields.Attr(tmpl); ok {
		return stripControl(passfields.Name(q.c.PassStyle, field, q.index, attr))
	}
	return stripControl(q.ph.ReplaceAll(tmpl, ""))
}

// passesField reports whether a plain field is forwarded in pass mode
// (pass_form_fields).
func (c *Config) passesField(name string) bool {
	return c.passForm == nil || c.passForm.MatchString(name)
}

// passSignature is the hex HMAC-SHA256, under key, of the file's form field
// name and the values of the fields written for it, in order, each written
// as "<length in bytes>:<value>\n".
func passSignature(key []byte, field string, fields []formstream.Field) string {
	mac := hmac.New(sha256.New, key)
	writeSigned := func(v string) { fmt.Fprintf(mac, "%d:%s\n", len(v), v) }
	writeSigned(field)
	for _, f := range fields {
		writeSigned(f.Value)
	}
	return hex.EncodeToString(mac.Sum(nil))
}

// stripControl removes control characters (CR, LF, NUL, …).
func stripControl(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
}

// reservedNames returns the set of names a client's plain field may not
// take in pass mode, as read by Go's parser, PHP's or Rack's (which turn
// "a.b" into "a_b", "[a]" into "a", …; see [formstream.Reserved] and
// [passfields.Reserve]). The fields written for each stored file are added
// to it as they are written. Each name is read once when added, so checking
// a field costs the same however many files the form holds.
func (c *Config) reservedNames() *formstream.Reserved {
	r := new(formstream.Reserved)
	templates := make([]string, 0, len(c.PassFields)+1)
	for _, pf := range c.PassFields {
		templates = append(templates, pf.Name)
	}
	if c.SignatureField != "" {
		templates = append(templates, c.SignatureField)
	}
	passfields.Reserve(r, c.PassStyle, templates)
	return r
}

// upload streams one file to S3.
func (q *Request) upload(ctx context.Context, field, name, declared string, size int64, body io.Reader) (*File, error) {
	key, err := q.objectKey(field, name)
	if err != nil {
		return nil, err
	}
	meta, err := q.metadata(field, name)
	if err != nil {
		return nil, err
	}
	declared = strings.TrimSpace(declared)
	res, err := q.c.Uploader.Upload(ctx, s3stream.Object{
		Bucket:             q.c.Bucket,
		Key:                key,
		ContentType:        declared,
		ContentDisposition: objectkey.ContentDisposition(objectkey.SanitizeFilename(name)),
		Metadata:           meta,
		Size:               size,
		MaxSize:            q.c.MaxFileSize,
		Account:            q.acct,
		SniffLen:           contenttype.SniffLen,
		Inspect: func(head []byte) (string, error) {
			return q.c.Allowlist.Check(declared, head)
		},
	}, body)
	if err != nil {
		return nil, fmt.Errorf("storing file %q: %w", name, err)
	}
	info := &File{Field: field, FileName: name, S3Key: res.Key, Bucket: res.Bucket, Size: res.Size,
		ContentType: res.ContentType, ETag: res.ETag, VersionID: res.VersionID, SHA256: res.SHA256,
		Checksum: res.Checksum.Value, ChecksumAlgorithm: res.Checksum.Algorithm, uploadID: res.UploadID, parts: res.Parts}
	q.files = append(q.files, info)
	return info, nil
}

// objectKey builds the key of one file from the key template.
func (q *Request) objectKey(field, name string) (string, error) {
	now := time.Now().UTC()
	safe := objectkey.SanitizeFilename(name)
	// Nothing of the previous file may leak into this one's key or metadata.
	for _, p := range []string{"upload.key", "upload.bucket", "upload.size", "upload.content_type",
		"upload.sha256", "upload.checksum", "upload.checksum_algorithm", "upload.etag", "upload.version_id", "upload.name", "upload.md5", "upload.crc32"} {
		q.ph.Set(p, "")
	}
	q.ph.Set("upload.index", q.index)
	q.ph.Set("upload.field_base", passfields.Base(field))
	q.ph.Set("upload.uuid", uuid.NewString())
	q.ph.Set("upload.filename", safe)
	q.ph.Set("upload.ext", objectkey.Ext(safe))
	q.ph.Set("upload.field", field)
	q.ph.Set("upload.year", now.Format("2006"))
	q.ph.Set("upload.month", now.Format("01"))
	q.ph.Set("upload.day", now.Format("02"))
	q.ph.Set("upload.date", now.Format("2006/01/02"))
	key, err := q.ph.ReplaceKey(q.c.Key)
	if err != nil {
		return "", fmt.Errorf("%w: %w", objectkey.ErrInvalidKey, err)
	}
	return objectkey.Clean(q.c.Prefix, q.c.Prefix+"/"+key)
}

// metadata builds the user metadata of one file: the client's (when
// accepted), then the configured, then the gateway's own, which win.
func (q *Request) metadata(field, name string) (map[string]string, error) {
	meta := map[string]string{}
	if q.c.ClientMetadata {
		for h, vals := range q.r.Header {
			k, ok := strings.CutPrefix(strings.ToLower(h), "x-upload-meta-")
			if !ok || !validMetadataName(k) || s3limits.Reserved(k) || len(vals) == 0 {
				continue
			}
			meta[k] = objectkey.MetadataValue(vals[0])
		}
	}
	for k, tmpl := range q.c.Metadata {
		if k = strings.ToLower(k); !s3limits.Reserved(k) {
			meta[k] = objectkey.MetadataValue(q.ph.ReplaceAll(tmpl, ""))
		}
	}
	meta[s3limits.MetaOriginalName] = objectkey.MetadataValue(name)
	if field != "" {
		meta[s3limits.MetaField] = objectkey.MetadataValue(field)
	}
	if v, _ := q.ph.GetString("http.auth.user.id"); v != "" {
		meta[s3limits.MetaUploadedBy] = objectkey.MetadataValue(v)
	}
	if v, _ := q.ph.GetString("http.auth.user.role"); v != "" {
		meta[s3limits.MetaUserRole] = objectkey.MetadataValue(v)
	}
	// The uploader adds sha256 and gateway-write-id: keep room for them.
	if err := s3limits.CheckMetadata(meta, s3limits.UploaderMetadataSize); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMetadataTooLarge, err)
	}
	return meta, nil
}

func validMetadataName(k string) bool {
	return k != "" && len(k) <= 128 && !strings.ContainsFunc(k, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_')
	})
}

// rawFileName names the file of a raw body.
func (q *Request) rawFileName() string {
	if v := q.r.Header.Get(q.c.FilenameHeader); v != "" {
		if u, err := url.PathUnescape(v); err == nil {
			return u
		}
		return v
	}
	if cd := q.r.Header.Get("Content-Disposition"); cd != "" {
		if _, params, err := mime.ParseMediaType(cd); err == nil && params["filename"] != "" {
			return params["filename"]
		}
	}
	if base := path.Base(q.r.URL.Path); base != "/" && base != "." {
		return base
	}
	return "upload"
}

func (q *Request) setFilePlaceholders(f *File) {
	q.ph.Set("upload.key", f.S3Key)
	q.ph.Set("upload.bucket", f.Bucket)
	q.ph.Set("upload.size", strconv.FormatInt(f.Size, 10))
	q.ph.Set("upload.content_type", f.ContentType)
	q.ph.Set("upload.sha256", f.SHA256)
	q.ph.Set("upload.checksum", f.Checksum)
	q.ph.Set("upload.checksum_algorithm", f.ChecksumAlgorithm)
	q.ph.Set("upload.etag", f.ETag)
	q.ph.Set("upload.version_id", f.VersionID)
	q.ph.Set("upload.name", f.FileName)
}

func (q *Request) setPlaceholders() {
	keys := make([]string, len(q.files))
	var total int64
	for i, f := range q.files {
		keys[i] = f.S3Key
		total += f.Size
	}
	q.ph.Set("http.upload_gateway.files", len(q.files))
	q.ph.Set("http.upload_gateway.keys", strings.Join(keys, ","))
	q.ph.Set("http.upload_gateway.bucket", q.c.Bucket)
	q.ph.Set("http.upload_gateway.bytes", total)
	if len(q.files) > 0 {
		q.ph.Set("http.upload_gateway.key", q.files[0].S3Key)
		q.ph.Set("http.upload_gateway.upload_id", q.files[0].uploadID)
	}
}

// Respond answers the client with the stored files.
func (q *Request) Respond(w http.ResponseWriter) error {
	q.out.Status = http.StatusCreated
	return envelope.WriteData(w, http.StatusCreated, map[string]any{"files": q.files})
}

// Pass forwards the rewritten request to next, writing to w, and rolls the
// stored objects back when next fails, answers with no status or a
// rollback_on one, or panics (the panic goes on once the objects are
// deleted). status reports the status written to w so far, 0 for none (w
// is a recorder). Pass returns next's error.
func (q *Request) Pass(w http.ResponseWriter, next func(http.ResponseWriter, *http.Request) error, status func() int) error {
	r := q.r
	var body []byte
	if q.form != nil {
		body = q.form.Bytes()
		r.Header.Set("Content-Type", q.formType)
	} else {
		// A raw body is replaced by the JSON description of the stored file.
		b, err := json.Marshal(map[string]any{"files": q.files})
		if err != nil {
			return err
		}
		body = b
		r.Header.Set("Content-Type", "application/json")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	r.TransferEncoding = nil
	r.Trailer = nil
	// Headers that describe the original body no longer apply.
	for _, h := range []string{"Transfer-Encoding", "Expect", "Content-Encoding", "Content-MD5", "Digest",
		"Content-Digest", "Repr-Digest", "Trailer"} {
		r.Header.Del(h)
	}

	defer func() {
		// reverse_proxy panics with http.ErrAbortHandler when copying the
		// response fails: settle the upload, then let the panic go on.
		if v := recover(); v != nil {
			q.out.Status = status()
			if q.out.Status == 0 || q.c.rollsBack(q.out.Status) {
				q.Rollback()
			}
			q.out.Result = metrics.ResultRolledBack
			panic(v)
		}
	}()
	err := next(w, r)
	q.out.Status = status()
	if err != nil || q.out.Status == 0 || q.c.rollsBack(q.out.Status) {
		q.c.Logger.Warn("upstream rejected the upload; deleting stored objects",
			zap.Int("status", q.out.Status), zap.Int("files", len(q.files)), zap.NamedError("upstream_error", err))
		q.Rollback()
	}
	if err != nil {
		q.out.Result = metrics.ResultRolledBack
	}
	return err
}

func (c *Config) rollsBack(status int) bool {
	return slices.ContainsFunc(c.RollbackOn, func(code int) bool { return status == code || (code < 100 && status/100 == code) })
}

// Rollback deletes every object stored for this request, once.
func (q *Request) Rollback() {
	if q.rolledBack {
		return
	}
	q.rolledBack = true
	q.out.RolledBack = len(q.files)
	q.out.Result = metrics.ResultRolledBack
	ctx := context.WithoutCancel(q.r.Context())
	// A few workers: each delete is retried for up to abort_timeout while S3
	// is unreachable, and a form may hold many files, but never one
	// goroutine (and S3 request) per file at once.
	files := make(chan *File)
	var wg sync.WaitGroup
	for range min(rollbackWorkers, len(q.files)) {
		wg.Go(func() {
			for f := range files {
				if err := q.c.Uploader.Delete(ctx, f.Bucket, f.S3Key, f.VersionID); err != nil {
					q.c.Logger.Error("rolled-back object could not be deleted",
						zap.String("bucket", f.Bucket), zap.String("key", f.S3Key), zap.Error(err))
				}
			}
		})
	}
	for _, f := range q.files {
		files <- f
	}
	close(files)
	wg.Wait()
}

// rollbackWorkers is how many deletes one rollback runs at once.
const rollbackWorkers = 8
