package fileapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/internal/awserr"
	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// Errors of the API. Handlers wrap them with details; classify maps them to
// statuses. For client errors (4xx) the wrapped message is what the client
// reads, so it never carries S3's own error text.
var (
	errRouteNotFound    = errors.New("no such route")
	errMethodNotAllowed = errors.New("method not allowed")
	errUnauthenticated  = errors.New("authentication required")
	errDenied           = errors.New("access denied")
	errNotJSON          = errors.New("the request body must be application/json")
	errBadRequest       = errors.New("invalid request")
	errInvalidFileID    = errors.New("invalid fileId")
	errInvalidToken     = errors.New("invalid upload token")
	errTokenExpired     = errors.New("upload token expired")
	errMetadata         = errors.New("invalid metadata")
	errPartsMismatch    = errors.New("the uploaded parts do not match the upload")
	errTooLarge         = errors.New("file too large")
	errNotFound         = errors.New("file not found")
	errUploadNotFound   = errors.New("multipart upload not found")
	errStorage          = errors.New("storage request failed")
	errStorageTimeout   = errors.New("storage request timed out")
	errTooManyRequests  = errors.New("too many requests")
	errExists           = errors.New("the file already exists")
	errSizeMismatch     = errors.New("the file's size does not match")
	errTypeMismatch     = errors.New("the file's content type does not match")
	errChecksumMismatch = errors.New("the file's checksum does not match")
)

// classes maps errors to the status, code and message the client gets, the
// first match winning; an empty message shows the error's own text.
var classes = []struct {
	err           error
	status        int
	code, message string
}{
	{errRouteNotFound, http.StatusNotFound, "NOT_FOUND", "no such route"},
	{errMethodNotAllowed, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "method not allowed"},
	{errUnauthenticated, http.StatusUnauthorized, "UNAUTHENTICATED", "authentication required"},
	{context.Canceled, envelope.StatusClientClosedRequest, "CLIENT_CLOSED_REQUEST", "the client closed the request"},
	{errTooManyRequests, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "too many multipart uploads are being started at once; try again shortly"},
	{errDenied, http.StatusForbidden, "FORBIDDEN", "access denied"},
	{errTokenExpired, http.StatusForbidden, "UPLOAD_TOKEN_EXPIRED", "the upload token has expired"},
	{errInvalidToken, http.StatusForbidden, "INVALID_UPLOAD_TOKEN", ""},
	{errNotFound, http.StatusNotFound, "FILE_NOT_FOUND", "file not found"},
	{errExists, http.StatusConflict, "FILE_EXISTS", "the file already exists"},
	{errUploadNotFound, http.StatusNotFound, "UPLOAD_NOT_FOUND", "multipart upload not found"},
	{errTooLarge, http.StatusRequestEntityTooLarge, "FILE_TOO_LARGE", ""},
	{errNotJSON, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", ""},
	{contenttype.ErrNotAllowed, http.StatusUnsupportedMediaType, "CONTENT_TYPE_NOT_ALLOWED", ""},
	{errTypeMismatch, http.StatusUnsupportedMediaType, "CONTENT_TYPE_MISMATCH", ""},
	{contenttype.ErrMismatch, http.StatusUnsupportedMediaType, "CONTENT_TYPE_MISMATCH", ""},
	{errSizeMismatch, http.StatusBadRequest, "SIZE_MISMATCH", ""},
	{errChecksumMismatch, http.StatusBadRequest, "CHECKSUM_MISMATCH", ""},
	{errInvalidFileID, http.StatusBadRequest, "INVALID_FILE_ID", "invalid fileId"},
	{objectkey.ErrInvalidKey, http.StatusBadRequest, "INVALID_KEY", "the object key built for this file is not valid"},
	{s3limits.ErrMetadataTooLarge, http.StatusBadRequest, "METADATA_TOO_LARGE", ""},
	{errMetadata, http.StatusBadRequest, "INVALID_METADATA", ""},
	{errPartsMismatch, http.StatusBadRequest, "PARTS_MISMATCH", ""},
	{errBadRequest, http.StatusBadRequest, "BAD_REQUEST", ""},
	{errStorageTimeout, http.StatusGatewayTimeout, "STORAGE_TIMEOUT", "the storage backend did not answer in time"},
	{context.DeadlineExceeded, http.StatusGatewayTimeout, "STORAGE_TIMEOUT", "the storage backend did not answer in time"},
	{errStorage, http.StatusBadGateway, "STORAGE_ERROR", "the storage backend failed"},
}

// classify maps an error to the status, code and message the client gets.
// It is the one place where errors become HTTP statuses. A request body
// over its limit (http.MaxBytesError) comes straight from decoding, never
// wrapped in one of the errors above.
func classify(err error) (status int, code, message string) {
	if maxBytes, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE",
			fmt.Sprintf("the request body exceeds %d bytes", maxBytes.Limit)
	}
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.status, c.code, cmp.Or(c.message, err.Error())
		}
	}
	return http.StatusInternalServerError, "INTERNAL_ERROR", "internal error"
}

// fail answers a request with the error's status.
func (s *Service) fail(w http.ResponseWriter, err error) {
	status, code, message := classify(err)
	if s.cfg.OnError != nil {
		s.cfg.OnError(status, err)
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	_ = envelope.WriteFailure(w, status, code, message)
}

// storageError translates an error of an S3 call (or of the presigner)
// made for the request context ctx. notFound is what a missing object or
// upload becomes (errNotFound or errUploadNotFound); a missing bucket is a
// storage error, since that is the gateway's configuration, not the
// client's doing, as is an S3 access denial of the gateway's credentials.
func storageError(ctx context.Context, op string, notFound, err error) error {
	if ctxErr := ctx.Err(); errors.Is(ctxErr, context.Canceled) {
		return fmt.Errorf("%s: %w", op, ctxErr)
	}
	kind := errStorage
	switch {
	case awserr.Code(err) == "NoSuchBucket":
	case awserr.Is[*types.NoSuchKey](err), awserr.Is[*types.NotFound](err), awserr.Is[*types.NoSuchUpload](err),
		awserr.Status(err) == http.StatusNotFound:
		kind = notFound
	case errors.Is(err, context.DeadlineExceeded), awserr.Timeout(err):
		kind = errStorageTimeout
	}
	return fmt.Errorf("%w: %s: %v", kind, op, err)
}

// badRequest returns a 400 error whose message is shown to the client.
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errBadRequest}, args...)...)
}
