package gateway

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

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

var (
	errMetadataTooLarge = errors.New("metadata exceeds 2 KiB")
	errUnauthenticated  = errors.New("authentication required")
	errForbidden        = errors.New("access denied")
	errReservedField    = errors.New("form field name is reserved for the gateway")
	errTooManyUploads   = errors.New("too many uploads in progress for this client")
)

// apiError is what the client is told about a failure.
type apiError struct {
	status  int
	code    string
	message string
}

// classify maps an error to the status, code and message the client gets.
// It is the one place where errors become HTTP statuses.
// bodyErr is the error the request body returned while it was read, if any.
func (g *Gateway) classify(err, bodyErr error) apiError {
	var maxBytes *http.MaxBytesError
	switch {
	case errors.Is(err, errUnauthenticated):
		return apiError{http.StatusUnauthorized, "UNAUTHENTICATED", "authentication required"}
	case errors.Is(err, errForbidden):
		return apiError{http.StatusForbidden, "FORBIDDEN", "your role may not upload here"}
	case errors.Is(err, errTooManyUploads):
		return apiError{http.StatusTooManyRequests, "TOO_MANY_UPLOADS",
			fmt.Sprintf("you have %d uploads in progress already; retry when one has finished", g.MaxUploadsPerClient)}
	case errors.As(err, &maxBytes) || errors.As(bodyErr, &maxBytes):
		return apiError{http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE",
			fmt.Sprintf("the request body exceeds the limit of %d bytes", maxBytes.Limit)}
	case readTimedOut(bodyErr):
		return apiError{http.StatusRequestTimeout, "REQUEST_TIMEOUT",
			fmt.Sprintf("the request body arrived too slowly (stalled for %v, or slower than %d bytes/s)", time.Duration(g.ReadTimeout), g.MinRate)}
	case errors.Is(err, context.Canceled) || connectionLost(bodyErr):
		return apiError{shared.StatusClientClosedRequest, "CLIENT_CLOSED_REQUEST", "the client closed the request"}
	case bodyErr != nil:
		return apiError{http.StatusBadRequest, "BODY_READ_ERROR", "the request body could not be read"}
	case errors.Is(err, s3stream.ErrMemoryWait):
		return apiError{http.StatusServiceUnavailable, "SERVER_BUSY", "the gateway is out of upload memory; retry later"}
	case errors.Is(err, s3stream.ErrTooLarge):
		limit := g.MaxFileSize
		if g.uploader != nil {
			limit = g.uploader.MaxObjectSize(g.MaxFileSize)
		} else if limit == 0 {
			limit = s3stream.MaxObjectSize
		}
		return apiError{http.StatusRequestEntityTooLarge, "FILE_TOO_LARGE",
			fmt.Sprintf("a file exceeds the limit of %d bytes", limit)}
	case errors.Is(err, formstream.ErrTooManyFiles):
		return apiError{http.StatusRequestEntityTooLarge, "TOO_MANY_FILES",
			fmt.Sprintf("the form has more than %d files", g.MaxFiles)}
	case errors.Is(err, formstream.ErrTooManyFields), errors.Is(err, formstream.ErrFieldTooLarge),
		errors.Is(err, formstream.ErrFormTooLarge):
		return apiError{http.StatusRequestEntityTooLarge, "FORM_TOO_LARGE", "the form's fields exceed the limits"}
	case errors.Is(err, contenttype.ErrNotAllowed), errors.Is(err, contenttype.ErrMismatch):
		return apiError{http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE",
			"the file's content type is not allowed (allowed: " + strings.Join(g.AllowedTypes, ", ") + ")"}
	case errors.Is(err, formstream.ErrNotMultipart):
		return apiError{http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "expected multipart/form-data"}
	case errors.Is(err, formstream.ErrMalformed), errors.Is(err, io.ErrUnexpectedEOF):
		return apiError{http.StatusBadRequest, "MALFORMED_FORM", "the multipart form is malformed"}
	case errors.Is(err, objectkey.ErrInvalidKey):
		return apiError{http.StatusBadRequest, "INVALID_KEY", "the object key built for this file is not valid"}
	case errors.Is(err, errReservedField):
		return apiError{http.StatusBadRequest, "RESERVED_FIELD", "the form has a field named like the ones the gateway writes for stored files"}
	case errors.Is(err, errMetadataTooLarge):
		return apiError{http.StatusBadRequest, "METADATA_TOO_LARGE", "the object metadata exceeds 2 KiB"}
	case errors.Is(err, s3stream.ErrStorageTimeout), errors.Is(err, context.DeadlineExceeded):
		return apiError{http.StatusGatewayTimeout, "STORAGE_TIMEOUT", "the storage backend did not answer in time"}
	case errors.Is(err, s3stream.ErrStorage):
		return apiError{http.StatusBadGateway, "STORAGE_ERROR", "the storage backend failed"}
	case errors.Is(err, s3stream.ErrRead), errors.Is(err, formstream.ErrRead):
		return apiError{http.StatusBadRequest, "BODY_READ_ERROR", "the request body could not be read"}
	}
	return apiError{http.StatusInternalServerError, "INTERNAL_ERROR", "internal error"}
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

// fail reports err to the client as a JSON error, or to Caddy's error
// handling when handle_errors is set.
func (g *Gateway) fail(w http.ResponseWriter, repl *caddy.Replacer, err, bodyErr error) error {
	e := g.classify(err, bodyErr)
	repl.Set("http.upload_gateway.error", e.message)
	repl.Set("http.upload_gateway.error_code", e.code)
	if secs := g.retryAfter(e.status); secs > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	if g.HandleErrors {
		return caddyhttp.Error(e.status, err)
	}
	level := zapcore.DebugLevel
	if e.status >= 500 {
		level = zapcore.ErrorLevel
	}
	if c := g.logger.Check(level, "upload failed"); c != nil {
		c.Write(zap.Int("status", e.status), zap.String("code", e.code), zap.Error(err))
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="upload-gateway"`)
	}
	if e.status == shared.StatusClientClosedRequest {
		// Nobody is there to read a body; the status is for the access log.
		w.WriteHeader(e.status)
		return nil
	}
	return envelope.WriteError(w, e.status, e.code, e.message)
}

// retryAfter is the Retry-After (seconds) sent with a status, 0 for none:
// a busy gateway (503) or a client over its upload cap (429) may retry.
func (g *Gateway) retryAfter(status int) int {
	switch status {
	case http.StatusServiceUnavailable:
		return max(1, int(time.Duration(g.MemoryWait).Seconds()))
	case http.StatusTooManyRequests:
		return 5
	}
	return 0
}
