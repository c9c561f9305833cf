package uploadreq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"
)

// Errors of the request itself; [Config.Classify] maps them, and those of
// formstream, s3stream and contenttype, to HTTP answers.
var (
	ErrMetadataTooLarge = errors.New("metadata exceeds 2 KiB")
	ErrUnauthenticated  = errors.New("authentication required")
	ErrForbidden        = errors.New("access denied")
	ErrReservedField    = errors.New("form field name is reserved for the gateway")
	ErrTooManyUploads   = errors.New("too many uploads in progress for this client")
)

// Answer is what the client is told about a failure.
type Answer struct {
	Status  int
	Code    string
	Message string
}

// Classify maps an error to the status, code and message the client gets.
// It is the one place where errors become HTTP statuses.
// bodyErr is the error the request body returned while it was read, if any.
func (c *Config) Classify(err, bodyErr error) Answer {
	var maxBytes *http.MaxBytesError
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return Answer{http.StatusUnauthorized, "UNAUTHENTICATED", "authentication required"}
	case errors.Is(err, ErrForbidden):
		return Answer{http.StatusForbidden, "FORBIDDEN", "your role may not upload here"}
	case errors.Is(err, ErrTooManyUploads):
		return Answer{http.StatusTooManyRequests, "TOO_MANY_UPLOADS",
			fmt.Sprintf("you have %d uploads in progress already; retry when one has finished", c.MaxUploadsPerClient)}
	case errors.As(err, &maxBytes) || errors.As(bodyErr, &maxBytes):
		return Answer{http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE",
			fmt.Sprintf("the request body exceeds the limit of %d bytes", maxBytes.Limit)}
	case readTimedOut(bodyErr):
		return Answer{http.StatusRequestTimeout, "REQUEST_TIMEOUT",
			fmt.Sprintf("the request body arrived too slowly (stalled for %v, or slower than %d bytes/s)", c.ReadTimeout, c.MinRate)}
	case errors.Is(err, context.Canceled) || connectionLost(bodyErr):
		return Answer{envelope.StatusClientClosedRequest, "CLIENT_CLOSED_REQUEST", "the client closed the request"}
	case bodyErr != nil:
		return Answer{http.StatusBadRequest, "BODY_READ_ERROR", "the request body could not be read"}
	case errors.Is(err, s3stream.ErrMemoryWait):
		return Answer{http.StatusServiceUnavailable, "SERVER_BUSY", "the gateway is out of upload memory; retry later"}
	case errors.Is(err, s3stream.ErrTooLarge):
		limit := c.MaxFileSize
		if c.Uploader != nil {
			limit = c.Uploader.MaxObjectSize(c.MaxFileSize)
		} else if limit == 0 {
			limit = s3limits.MaxObjectSize
		}
		return Answer{http.StatusRequestEntityTooLarge, "FILE_TOO_LARGE",
			fmt.Sprintf("a file exceeds the limit of %d bytes", limit)}
	case errors.Is(err, formstream.ErrTooManyFiles):
		return Answer{http.StatusRequestEntityTooLarge, "TOO_MANY_FILES",
			fmt.Sprintf("the form has more than %d files", c.Form.MaxFiles)}
	case errors.Is(err, formstream.ErrTooManyFields), errors.Is(err, formstream.ErrFieldTooLarge),
		errors.Is(err, formstream.ErrFormTooLarge):
		return Answer{http.StatusRequestEntityTooLarge, "FORM_TOO_LARGE", "the form's fields exceed the limits"}
	case errors.Is(err, contenttype.ErrNotAllowed), errors.Is(err, contenttype.ErrMismatch):
		return Answer{http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE",
			"the file's content type is not allowed (allowed: " + strings.Join(c.AllowedTypes, ", ") + ")"}
	case errors.Is(err, formstream.ErrNotMultipart):
		return Answer{http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "expected multipart/form-data"}
	case errors.Is(err, formstream.ErrMalformed), errors.Is(err, io.ErrUnexpectedEOF):
		return Answer{http.StatusBadRequest, "MALFORMED_FORM", "the multipart form is malformed"}
	case errors.Is(err, objectkey.ErrInvalidKey):
		return Answer{http.StatusBadRequest, "INVALID_KEY", "the object key built for this file is not valid"}
	case errors.Is(err, ErrReservedField):
		return Answer{http.StatusBadRequest, "RESERVED_FIELD", "the form has a field named like the ones the gateway writes for stored files"}
	case errors.Is(err, ErrMetadataTooLarge):
		return Answer{http.StatusBadRequest, "METADATA_TOO_LARGE", "the object metadata exceeds 2 KiB"}
	case errors.Is(err, s3stream.ErrStorageTimeout), errors.Is(err, context.DeadlineExceeded):
		return Answer{http.StatusGatewayTimeout, "STORAGE_TIMEOUT", "the storage backend did not answer in time"}
	case errors.Is(err, s3stream.ErrStorage):
		return Answer{http.StatusBadGateway, "STORAGE_ERROR", "the storage backend failed"}
	case errors.Is(err, s3stream.ErrRead), errors.Is(err, formstream.ErrRead):
		return Answer{http.StatusBadRequest, "BODY_READ_ERROR", "the request body could not be read"}
	}
	return Answer{http.StatusInternalServerError, "INTERNAL_ERROR", "internal error"}
}

// Fail classifies err as the request's failure, notes it in the outcome
// and sets the answer's headers (Retry-After, and a read deadline for the
// rest of the body); the caller writes the answer.
func (q *Request) Fail(w http.ResponseWriter, err error) Answer {
	var bodyErr error
	if q.body != nil {
		bodyErr = q.body.err
	}
	a := q.c.Classify(err, bodyErr)
	q.failed = true
	q.out.Status, q.out.Reason, q.out.Result = a.Status, a.Code, metrics.ResultOf(a.Status)
	var mf s3stream.MultipartFailure
	if errors.As(err, &mf) {
		q.out.Aborted, q.out.UploadID = true, mf.UploadID()
	}
	if q.r.ContentLength != 0 && (q.body == nil || !q.body.eof) {
		// After the answer the server reads what is left of the body (up
		// to 256 KiB) before it lets go of the connection; a slow client
		// would hold the answer back as long as it likes. A second is
		// plenty for a client that is really sending.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(drainTimeout))
	}
	if secs := q.c.retryAfter(a.Status); secs > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	return a
}

// drainTimeout bounds how long the server reads the rest of a refused
// request's body before answering.
const drainTimeout = time.Second

// Write writes the answer as the JSON error envelope.
func (a Answer) Write(w http.ResponseWriter) error {
	if a.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="upload-gateway"`)
	}
	return envelope.WriteFailure(w, a.Status, a.Code, a.Message)
}

// retryAfter is the Retry-After (seconds) sent with a status, 0 for none:
// a busy gateway (503) or a client over its upload cap (429) may retry.
func (c *Config) retryAfter(status int) int {
	switch status {
	case http.StatusServiceUnavailable:
		return max(1, int(c.MemoryWait.Seconds()))
	case http.StatusTooManyRequests:
		return 5
	}
	return 0
}

// bodyReader remembers the error the request body itself returned, so that a
// dropped connection (the body fails) can be told from a form that is merely
// truncated (the body ends cleanly, the form does not).
type bodyReader struct {
	io.ReadCloser
	err      error
	eof      bool   // read to the end
	pending  []byte // read ahead by readAhead, returned first
	aheadErr error  // the error readAhead met, returned after pending
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if len(b.pending) > 0 {
		n := copy(p, b.pending)
		b.pending = b.pending[n:]
		return n, nil
	}
	switch {
	case b.aheadErr != nil:
		return 0, b.aheadErr
	case b.eof:
		return 0, io.EOF
	}
	return b.readBody(p)
}

// readBody reads from the body itself, noting its end and first error.
func (b *bodyReader) readBody(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// readAhead reads a little of the body ahead (up to 512 bytes, and no more
// once limit bytes are pending); Read returns them first. It reports whether
// reading ahead can go on: not once the body has ended or limit bytes are
// pending. A read error is returned, and returned again by Read after what
// is pending.
func (b *bodyReader) readAhead(limit int) (more bool, err error) {
	if b.eof || b.aheadErr != nil || len(b.pending) >= limit {
		return false, b.aheadErr
	}
	var p [512]byte
	n, err := b.readBody(p[:min(len(p), limit-len(b.pending))])
	b.pending = append(b.pending, p[:n]...)
	switch {
	case err == io.EOF:
		return false, nil
	case err != nil:
		b.aheadErr = err
		return false, err
	}
	return len(b.pending) < limit, nil
}

// readTimedOut reports whether reading the body hit the server's read
// timeout: the client is still there, but too slow.
func readTimedOut(err error) bool {
	var netErr net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout())
}

// connectionLost reports whether a body read error means the client went away.
func connectionLost(err error) bool {
	var netErr net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &netErr)
}
