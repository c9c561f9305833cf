package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/passfields"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

// fileInfo describes a stored file to clients.
type fileInfo struct {
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

// request is the state of one upload request.
type request struct {
	g     *Gateway
	r     *http.Request
	repl  *caddy.Replacer
	next  caddyhttp.Handler // the handler after the gateway
	files []*fileInfo
	acct  *s3stream.Account // the request's share of memory_limit
	body  *bodyReader       // nil until the body is wrapped

	form       *bytes.Buffer        // the rewritten form, in pass mode
	reserved   *formstream.Reserved // in pass mode: names a client's field may not take (see reservedNames)
	indexes    passfields.Counter   // {upload.index} per form field name
	index      int                  // {upload.index} of the file being stored
	formType   string
	rolledBack bool
	start      time.Time
	status     int                                               // the upstream's status, in pass mode
	done       func(role, result string, bytes int64, parts int) // metrics
}

// role labels the upload in metrics: the user's role, or "anonymous".
func (q *request) role() string {
	if role, _ := q.repl.GetString("http.auth.user.role"); role != "" {
		return role
	}
	return "anonymous"
}

// fail reports a failed upload: the client's error response, and the audit line.
func (q *request) fail(w http.ResponseWriter, start time.Time, err, bodyErr error) error {
	e := q.g.classify(err, bodyErr)
	result, auditResult := metrics.ResultFailed, "failed"
	switch {
	case e.status == http.StatusForbidden || e.status == http.StatusUnauthorized:
		result, auditResult = metrics.ResultRejected, "denied"
		q.g.metrics.AccessDenied("upload")
	case e.status == shared.StatusClientClosedRequest:
		result, auditResult = metrics.ResultAborted, "aborted"
	case e.status < 500:
		result, auditResult = metrics.ResultRejected, "rejected"
	}
	var mf s3stream.MultipartFailure
	if errors.As(err, &mf) {
		q.g.metrics.Aborted(e.code)
	}
	q.done(q.role(), result, 0, 0)
	q.g.metrics.ObserveRequest(q.g.Route, "upload", e.status, time.Since(start))
	q.g.cw.UploadObserved(q.g.Route, q.role(), result, e.status, time.Since(start), 0, 0, 0)
	shared.Audit(q.g.audit, q.r, shared.AuditEvent{Action: "upload", Result: auditResult, Status: e.status, Reason: e.code, Duration: time.Since(start)})
	if q.r.ContentLength != 0 && (q.body == nil || !q.body.eof) {
		// After the answer the server reads what is left of the body (up
		// to 256 KiB) before it lets go of the connection; a slow client
		// would hold the answer back as long as it likes. A second is
		// plenty for a client that is really sending.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(drainTimeout))
	}
	if handled, herr := q.refuse(w, err, bodyErr); handled {
		return herr
	}
	return q.g.fail(w, q.repl, err, bodyErr)
}

// finish records a stored upload in the metrics and the audit log.
func (q *request) finish(start time.Time, status int, passErr error) {
	var size int64
	parts := 0
	for _, f := range q.files {
		size += f.Size
		parts += f.parts
	}
	result := metrics.ResultOK
	if q.rolledBack || passErr != nil {
		result = metrics.ResultRolledBack
	}
	q.done(q.role(), result, size, parts)
	q.g.metrics.ObserveRequest(q.g.Route, "upload", status, time.Since(start))
	q.g.cw.UploadObserved(q.g.Route, q.role(), result, status, time.Since(start), size, parts, len(q.files))
	e := shared.AuditEvent{Action: "upload", Result: "ok", Files: len(q.files), Size: size, Duration: time.Since(start)}
	if len(q.files) > 0 {
		e.Key = q.files[0].S3Key
	}
	if q.rolledBack || passErr != nil {
		e.Result = "rolled_back"
	}
	shared.Audit(q.g.audit, q.r, e)
}

// store streams every file of the request to S3.
func (q *request) store() error {
	ct := q.r.Header.Get("Content-Type")
	if mt, _, _ := mime.ParseMediaType(ct); mt == "multipart/form-data" {
		return q.storeForm(ct)
	}
	_, err := q.upload(q.r.Context(), "", q.rawFileName(), ct, q.r.ContentLength, q.r.Body)
	return err
}

func (q *request) storeForm(contentType string) error {
	boundary, err := formstream.Boundary(contentType)
	if err != nil {
		return err
	}
	var mw *multipart.Writer
	if q.g.Output == OutputPass {
		// A fresh random boundary: values the client chose (file names)
		// can then never close a part and forge another one.
		q.form = new(bytes.Buffer)
		mw = multipart.NewWriter(q.form)
	}
	lim := formstream.Limits{MaxFiles: q.g.MaxFiles, MaxFields: q.g.MaxFields, MaxFieldBytes: q.g.MaxFieldSize, MaxFormBytes: q.g.MaxFormSize}
	if q.acct != nil {
		lim.Reserve = q.reserveForm
	}
	if q.g.Output == OutputPass {
		// The app trusts the fields the gateway writes; a client must not
		// be able to send fields that look like them. Checked as each field
		// arrives, so that no later file is stored, and once more at the end
		// against the fields written for files that came after it.
		q.reserved = q.g.reservedNames()
		lim.Pass = q.g.passesField
		lim.CheckName = func(name string) error {
			// A field that is not forwarded cannot pass for the gateway's.
			if q.g.passesField(name) && q.reserved.Match(name) {
				return fmt.Errorf("%w: %q", errReservedField, name)
			}
			return nil
		}
	}
	res, err := formstream.Rewrite(q.r.Context(), q.r.Body, boundary, lim, q.storeFile, mw)
	if err != nil {
		return err
	}
	if q.g.Output == OutputPass {
		for _, f := range res.Fields {
			if q.g.passesField(f.Name) && q.reserved.Match(f.Name) {
				return fmt.Errorf("%w: %q", errReservedField, f.Name)
			}
		}
	}
	if mw != nil {
		if err := mw.Close(); err != nil {
			return err
		}
		q.formType = mw.FormDataContentType()
	}
	return nil
}

// reserveForm takes n bytes of memory_limit for the form. While it waits,
// it reads a little of the body ahead (at most formProbeMax bytes, outside
// the budget), as the uploader does: a client that has gone is noticed then
// (an HTTP/1.1 request's context is not cancelled while its body is being
// read), and the wait ends with its read error instead of holding a place
// in the queue until memory_wait.
func (q *request) reserveForm(ctx context.Context, n int64) error {
	if q.acct.TryAcquire(n) {
		return nil
	}
	if q.body == nil {
		return q.acct.Acquire(ctx, n)
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
func (q *request) storeFile(ctx context.Context, f *formstream.File) ([]formstream.Field, error) {
	q.index = q.indexes.Next(f.Field)
	var digests *passfields.Digests
	if q.g.Output == OutputPass {
		digests = passfields.NewDigests(q.g.passMD5, q.g.passCRC32)
	}
	info, err := q.upload(ctx, f.Field, f.FileName, f.ContentType, -1, digests.Reader(f.Body))
	if err != nil || q.g.Output != OutputPass {
		return nil, err
	}
	q.setFilePlaceholders(info)
	q.repl.Set("upload.md5", digests.MD5())
	q.repl.Set("upload.crc32", digests.CRC32())
	fields := make([]formstream.Field, 0, len(q.g.PassFields)+1)
	for _, pf := range q.g.PassFields {
		fields = append(fields, formstream.Field{
			// Names become part headers: no control characters in them.
			Name:  q.passFieldName(pf.Name, f.Field, q.index),
			Value: q.repl.ReplaceAll(pf.Value, ""),
		})
	}
	if q.g.PassSignature != nil {
		fields = append(fields, formstream.Field{
			Name:  q.passFieldName(q.g.PassSignature.Field, f.Field, q.index),
			Value: passSignature(q.g.passKey, f.Field, fields),
		})
	}
	names := make([]string, len(fields))
	for i, fl := range fields {
		names[i] = fl.Name
	}
	passfields.ReserveWritten(q.reserved, f.Field, names)
	return fields, nil
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

// upload streams one file to S3.
func (q *request) upload(ctx context.Context, field, name, declared string, size int64, body io.Reader) (*fileInfo, error) {
	key, err := q.objectKey(field, name)
	if err != nil {
		return nil, err
	}
	meta, err := q.metadata(field, name)
	if err != nil {
		return nil, err
	}
	declared = strings.TrimSpace(declared)
	obj := s3stream.Object{
		Bucket:             q.g.Bucket,
		Key:                key,
		ContentType:        declared,
		ContentDisposition: objectkey.ContentDisposition(objectkey.SanitizeFilename(name)),
		Metadata:           meta,
		Size:               size,
		MaxSize:            q.g.MaxFileSize,
		Account:            q.acct,
		SniffLen:           contenttype.SniffLen,
		Inspect: func(head []byte) (string, error) {
			return q.g.allowlist.Check(declared, head)
		},
	}
	res, err := q.g.uploader.Upload(ctx, obj, body)
	if err != nil {
		return nil, fmt.Errorf("storing file %q: %w", name, err)
	}
	info := &fileInfo{
		Field:       field,
		FileName:    name,
		S3Key:       res.Key,
		Bucket:      res.Bucket,
		Size:        res.Size,
		ContentType: res.ContentType,
		ETag:        res.ETag,
		VersionID:   res.VersionID,
		SHA256:      res.SHA256,
		uploadID:    res.UploadID,
		parts:       res.Parts,
	}
	info.Checksum, info.ChecksumAlgorithm = res.Checksum.Value, res.Checksum.Algorithm
	q.files = append(q.files, info)
	return info, nil
}

// objectKey builds the key of one file from the key template.
func (q *request) objectKey(field, name string) (string, error) {
	now := time.Now().UTC()
	safe := objectkey.SanitizeFilename(name)
	// Nothing of the previous file may leak into this one's key or metadata.
	for _, p := range []string{"upload.key", "upload.bucket", "upload.size", "upload.content_type",
		"upload.sha256", "upload.checksum", "upload.checksum_algorithm", "upload.etag", "upload.version_id", "upload.name", "upload.md5", "upload.crc32"} {
		q.repl.Set(p, "")
	}
	q.repl.Set("upload.index", q.index)
	q.repl.Set("upload.field_base", passfields.Base(field))
	q.repl.Set("upload.uuid", uuid.NewString())
	q.repl.Set("upload.filename", safe)
	q.repl.Set("upload.ext", objectkey.Ext(safe))
	q.repl.Set("upload.field", field)
	q.repl.Set("upload.year", now.Format("2006"))
	q.repl.Set("upload.month", now.Format("01"))
	q.repl.Set("upload.day", now.Format("02"))
	q.repl.Set("upload.date", now.Format("2006/01/02"))
	key, err := q.repl.ReplaceFunc(q.g.Key, escapeIdentity)
	if err != nil {
		return "", fmt.Errorf("%w: %w", objectkey.ErrInvalidKey, err)
	}
	return objectkey.Clean(q.g.Prefix, q.g.Prefix+"/"+key)
}

// escapeIdentity makes every {http.auth.user.*} value in a key template one
// key segment: a user id or name with "/" or ".." in it must not reach
// another user's folder.
func escapeIdentity(variable string, val any) (any, error) {
	if !strings.HasPrefix(variable, "http.auth.user.") {
		return val, nil
	}
	return objectkey.EscapeSegment(caddy.ToString(val)), nil
}

// metadata builds the user metadata of one file: the client's (when
// accepted), then the configured, then the gateway's own, which win.
func (q *request) metadata(field, name string) (map[string]string, error) {
	meta := map[string]string{}
	if q.g.ClientMetadata {
		for h, vals := range q.r.Header {
			k, ok := strings.CutPrefix(strings.ToLower(h), "x-upload-meta-")
			if !ok || !validMetadataName(k) || s3limits.Reserved(k) || len(vals) == 0 {
				continue
			}
			meta[k] = objectkey.MetadataValue(vals[0])
		}
	}
	for k, tmpl := range q.g.Metadata {
		if k = strings.ToLower(k); !s3limits.Reserved(k) {
			meta[k] = objectkey.MetadataValue(q.repl.ReplaceAll(tmpl, ""))
		}
	}
	meta[s3limits.MetaOriginalName] = objectkey.MetadataValue(name)
	if field != "" {
		meta[s3limits.MetaField] = objectkey.MetadataValue(field)
	}
	if v, _ := q.repl.GetString("http.auth.user.id"); v != "" {
		meta[s3limits.MetaUploadedBy] = objectkey.MetadataValue(v)
	}
	if v, _ := q.repl.GetString("http.auth.user.role"); v != "" {
		meta[s3limits.MetaUserRole] = objectkey.MetadataValue(v)
	}
	// The uploader adds sha256 and gateway-write-id: keep room for them.
	if err := s3limits.CheckMetadata(meta, s3limits.UploaderMetadataSize); err != nil {
		return nil, fmt.Errorf("%w: %w", errMetadataTooLarge, err)
	}
	return meta, nil
}

func validMetadataName(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// rawFileName names the file of a raw body.
func (q *request) rawFileName() string {
	if v := q.r.Header.Get(q.g.FilenameHeader); v != "" {
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

func (q *request) setFilePlaceholders(f *fileInfo) {
	q.repl.Set("upload.key", f.S3Key)
	q.repl.Set("upload.bucket", f.Bucket)
	q.repl.Set("upload.size", strconv.FormatInt(f.Size, 10))
	q.repl.Set("upload.content_type", f.ContentType)
	q.repl.Set("upload.sha256", f.SHA256)
	q.repl.Set("upload.checksum", f.Checksum)
	q.repl.Set("upload.checksum_algorithm", f.ChecksumAlgorithm)
	q.repl.Set("upload.etag", f.ETag)
	q.repl.Set("upload.version_id", f.VersionID)
	q.repl.Set("upload.name", f.FileName)
}

func (q *request) setPlaceholders() {
	keys := make([]string, len(q.files))
	var total int64
	for i, f := range q.files {
		keys[i] = f.S3Key
		total += f.Size
	}
	q.repl.Set("http.upload_gateway.files", len(q.files))
	q.repl.Set("http.upload_gateway.keys", strings.Join(keys, ","))
	q.repl.Set("http.upload_gateway.bucket", q.g.Bucket)
	q.repl.Set("http.upload_gateway.bytes", total)
	if len(q.files) > 0 {
		q.repl.Set("http.upload_gateway.key", q.files[0].S3Key)
		q.repl.Set("http.upload_gateway.upload_id", q.files[0].uploadID)
	}
}

// respond answers the client with the stored files.
func (q *request) respond(w http.ResponseWriter) error {
	files := make([]*fileInfo, len(q.files))
	copy(files, q.files)
	return envelope.WriteData(w, http.StatusCreated, map[string]any{"files": files})
}

// pass forwards the rewritten request to next and rolls the stored objects
// back when next fails.
func (q *request) pass(w http.ResponseWriter, next caddyhttp.Handler) error {
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

	rec := caddyhttp.NewResponseRecorder(w, nil, nil)
	defer func() {
		// reverse_proxy panics with http.ErrAbortHandler when copying the
		// response fails: settle the upload, then let the panic go on.
		if v := recover(); v != nil {
			q.status = rec.Status()
			if q.status == 0 || q.g.rollsBack(q.status) {
				q.rollback()
			}
			q.finish(q.start, q.status, fmt.Errorf("upstream aborted: %v", v))
			panic(v)
		}
	}()
	err := next.ServeHTTP(rec, r)
	q.status = rec.Status()
	if status := rec.Status(); err != nil || status == 0 || q.g.rollsBack(status) {
		q.g.logger.Warn("upstream rejected the upload; deleting stored objects",
			zap.Int("status", status), zap.Int("files", len(q.files)), zap.NamedError("upstream_error", err))
		q.rollback()
	}
	return err
}

func (g *Gateway) rollsBack(status int) bool {
	for _, code := range g.RollbackOn {
		if caddyhttp.StatusCodeMatches(status, code) {
			return true
		}
	}
	return false
}

// rollback deletes every object stored for this request, once.
func (q *request) rollback() {
	if q.rolledBack {
		return
	}
	q.rolledBack = true
	q.g.metrics.RolledBack(len(q.files))
	ctx := detached(q.r.Context())
	// A few workers: each delete is retried for up to abort_timeout while S3
	// is unreachable, and a form may hold many files, but never one
	// goroutine (and S3 request) per file at once.
	files := make(chan *fileInfo)
	var wg sync.WaitGroup
	for range min(rollbackWorkers, len(q.files)) {
		wg.Go(func() {
			for f := range files {
				if err := q.g.uploader.Delete(ctx, f.Bucket, f.S3Key, f.VersionID); err != nil {
					q.g.logger.Error("rolled-back object could not be deleted",
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

// drainTimeout bounds how long the server reads the rest of a refused
// request's body before answering.
const drainTimeout = time.Second

// rollbackWorkers is how many deletes one rollback runs at once.
const rollbackWorkers = 8
