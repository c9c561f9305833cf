package shared

import (
	"context"
	"errors"
	"net"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"
)

// SDKMetrics returns an SDK middleware that records every call's operation,
// result and duration (retries included).
func SDKMetrics(observe func(op, result string, d time.Duration)) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("UploadGatewayMetrics",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				start := time.Now()
				out, md, err := next.HandleInitialize(ctx, in)
				observe(awsmiddleware.GetOperationName(ctx), callResult(err), time.Since(start))
				return out, md, err
			}), middleware.Before)
	}
}

// callResult names the outcome of an SDK call for metrics.
func callResult(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "error"
}

// S3Observer records S3 calls in m.
func S3Observer(m *metrics.Metrics) func(op, result string, d time.Duration) {
	return func(op, result string, d time.Duration) { m.S3Request(op, result, d) }
}
