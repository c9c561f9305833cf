package fileapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

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

// classify maps an error to the status, code and message the client gets.
// It is the one place where errors become HTTP statuses.
func classify(err error) (status int, code, message string) {
	var maxBytes *http.MaxBytesError
	switch {
	case errors.Is(err, errRouteNotFound):
		return http.StatusNotFound, "NOT_FOUND", "no such route"
	case errors.Is(err, errMethodNotAllowed):
		return http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "method not allowed"
	case errors.Is(err, errUnauthenticated):
		return http.StatusUnauthorized, "UNAUTHENTICATED", "authentication required"
	case errors.Is(err, context.Canceled):
		return statusClientClosedRequest, "CLIENT_CLOSED_REQUEST", "the client closed the request"
	case errors.Is(err, errTooManyRequests):
		return http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "too many multipart uploads are being started at once; try again shortly"
	case errors.Is(err, errDenied):
		return http.StatusForbidden, "FORBIDDEN", "access denied"
	case errors.Is(err, errTokenExpired):
		return http.StatusForbidden, "UPLOAD_TOKEN_EXPIRED", "the upload token has expired"
	case errors.Is(err, errInvalidToken):
		return http.StatusForbidden, "INVALID_UPLOAD_TOKEN", err.Error()
	case errors.Is(err, errNotFound):
		return http.StatusNotFound, "FILE_NOT_FOUND", "file not found"
	case errors.Is(err, errExists):
		return http.StatusConflict, "FILE_EXISTS", "the file already exists"
	case errors.Is(err, errUploadNotFound):
		return http.StatusNotFound, "UPLOAD_NOT_FOUND", "multipart upload not found"
	case errors.As(err, &maxBytes):
		return http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE",
			fmt.Sprintf("the request body exceeds %d bytes", maxBytes.Limit)
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, "FILE_TOO_LARGE", err.Error()
	case errors.Is(err, errNotJSON):
		return http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", err.Error()
	case errors.Is(err, contenttype.ErrNotAllowed):
		return http.StatusUnsupportedMediaType, "CONTENT_TYPE_NOT_ALLOWED", err.Error()
	case errors.Is(err, errTypeMismatch), errors.Is(err, contenttype.ErrMismatch):
		return http.StatusUnsupportedMediaType, "CONTENT_TYPE_MISMATCH", err.Error()
	case errors.Is(err, errSizeMismatch):
		return http.StatusBadRequest, "SIZE_MISMATCH", err.Error()
	case errors.Is(err, errChecksumMismatch):
		return http.StatusBadRequest, "CHECKSUM_MISMATCH", err.Error()
	case errors.Is(err, errInvalidFileID):
		return http.StatusBadRequest, "INVALID_FILE_ID", "invalid fileId"
	case errors.Is(err, objectkey.ErrInvalidKey):
		return http.StatusBadRequest, "INVALID_KEY", "the object key built for this file is not valid"
	case errors.Is(err, s3limits.ErrMetadataTooLarge):
		return http.StatusBadRequest, "METADATA_TOO_LARGE", err.Error()
	case errors.Is(err, errMetadata):
		return http.StatusBadRequest, "INVALID_METADATA", err.Error()
	case errors.Is(err, errPartsMismatch):
		return http.StatusBadRequest, "PARTS_MISMATCH", err.Error()
	case errors.Is(err, errBadRequest):
		return http.StatusBadRequest, "BAD_REQUEST", err.Error()
	case errors.Is(err, errStorageTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "STORAGE_TIMEOUT", "the storage backend did not answer in time"
	case errors.Is(err, errStorage):
		return http.StatusBadGateway, "STORAGE_ERROR", "the storage backend failed"
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
	if status == statusClientClosedRequest {
		// Nobody is there to read a body; the status is for the access log.
		w.WriteHeader(status)
		return
	}
	_ = envelope.WriteError(w, status, code, message)
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
	var (
		api     smithy.APIError
		resp    *smithyhttp.ResponseError
		noKey   *types.NoSuchKey
		missing *types.NotFound
		noUp    *types.NoSuchUpload
		ne      net.Error
	)
	switch {
	case errors.As(err, &api) && api.ErrorCode() == "NoSuchBucket":
		return fmt.Errorf("%w: %s: %v", errStorage, op, err)
	case errors.As(err, &noKey), errors.As(err, &missing), errors.As(err, &noUp),
		errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusNotFound:
		return fmt.Errorf("%w: %s: %v", notFound, op, err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: %s: %v", errStorageTimeout, op, err)
	}
	return fmt.Errorf("%w: %s: %v", errStorage, op, err)
}

// badRequest returns a 400 error whose message is shown to the client.
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errBadRequest}, args...)...)
}
