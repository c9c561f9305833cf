package s3stream

import (
	"context"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

// UnsignedPayload is an S3 client API option that signs requests with the
// payload hash UNSIGNED-PAYLOAD instead of the body's SHA-256. Over plain
// HTTP the SDK otherwise reads every part twice, once for its checksum and
// once for the SigV4 payload hash; S3 then hashes it again to check. With
// this option the part is protected by its checksum header (which is signed)
// alone. Use it only where the network path cannot be tampered with, such as
// a loopback endpoint; over HTTPS the SDK already sends payloads unsigned
// (with the checksum header the uploader sets).
//
// A payload hash the caller already set (see knownPayloadHash) is kept.
func UnsignedPayload(stack *middleware.Stack) error {
	return stack.Finalize.Add(setPayloadHash("UploadGatewayUnsignedPayload", "UNSIGNED-PAYLOAD"), middleware.Before)
}

// knownPayloadHash is a per-call option that gives the SDK a payload SHA-256
// the uploader computed while reading the body, so that the SDK does not hash
// the body again to sign it. It is used for single PutObject bodies, whose
// SHA-256 is the full-object digest.
func knownPayloadHash(hexSum string) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Finalize.Add(setPayloadHash("UploadGatewayKnownPayloadHash", hexSum), middleware.Before)
		})
	}
}

// setPayloadHash sets the SigV4 payload hash unless one is set already. It
// runs first in the finalize step, before the SDK's checksum and payload
// hash middleware, which skip their own hashing when they find it.
func setPayloadHash(id, value string) middleware.FinalizeMiddleware {
	return middleware.FinalizeMiddlewareFunc(id, func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
		middleware.FinalizeOutput, middleware.Metadata, error,
	) {
		if v4.GetPayloadHash(ctx) == "" {
			ctx = v4.SetPayloadHash(ctx, value)
		}
		return next.HandleFinalize(ctx, in)
	})
}
