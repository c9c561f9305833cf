// Package awserr reads what an AWS SDK error says: the service's error
// code, the HTTP status of its answer, whether the call timed out, and
// whether S3 said a multipart upload does not exist.
// Packages that call AWS use it at their boundary to translate SDK errors
// into their own sentinel errors.
package awserr

import (
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Code is the error code of the service's answer (e.g. "AccessDenied"), or
// "" when err carries none.
func Code(err error) string {
	if ae, ok := errors.AsType[smithy.APIError](err); ok {
		return ae.ErrorCode()
	}
	return ""
}

// Status is the HTTP status of the service's answer, or 0 when there was
// no answer.
func Status(err error) int {
	if re, ok := errors.AsType[*smithyhttp.ResponseError](err); ok && re.Response != nil {
		return re.HTTPStatusCode()
	}
	return 0
}

// Timeout reports whether a network error in err's tree is a timeout.
func Timeout(err error) bool {
	te, ok := errors.AsType[interface {
		error
		Timeout() bool
	}](err)
	return ok && te.Timeout()
}

// NoSuchUpload reports whether S3 answered that a multipart upload does
// not exist (any more): the SDK's typed error or, from S3-compatible
// stores, only its code.
func NoSuchUpload(err error) bool {
	return Is[*types.NoSuchUpload](err) || Code(err) == "NoSuchUpload"
}

// Is reports whether err's tree holds an error of type E.
func Is[E error](err error) bool {
	_, ok := errors.AsType[E](err)
	return ok
}
