// Package readiness answers whether the gateway can serve uploads right
// now: the bucket answers and the KMS key can be used. Probes from load
// balancers and Kubernetes come every few seconds from several places,
// so a [Checker] caches its last answer for a short time and runs at
// most one check at a time.
//
// # Implementation
//
// The bucket is checked with HeadBucket. With SSE-KMS, a multipart upload
// is created with the configured key and aborted at once: creating it
// makes S3 ask KMS for a data key, exactly as an upload does, and unlike a
// canary object it leaves no object version behind.
package readiness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// S3API is the part of the S3 client a check calls. Usually, this is an
// instance of github.com/aws/aws-sdk-go-v2/service/s3.Client.
type S3API interface {
	HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// Defaults of a Checker.
const (
	DefaultCacheFor = 5 * time.Second
	DefaultTimeout  = 3 * time.Second
)

// Checker checks readiness and caches the answer. Its zero value is not
// usable; fill in S3 and Bucket.
type Checker struct {
	// S3 is the client the checks call.
	S3 S3API
	// Bucket is the bucket uploads go to.
	Bucket string
	// Key is where the KMS check creates and aborts its multipart upload.
	Key string
	// Encryption is the objects' encryption; the KMS check runs only for
	// aws:kms.
	Encryption s3limits.Encryption
	// CacheFor is how long an answer is reused. Default DefaultCacheFor.
	CacheFor time.Duration
	// Timeout bounds one check. Default DefaultTimeout.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	checked time.Time
	last    error
}

// Ready reports nil when the gateway can serve, else what is wrong. The
// answer may be up to CacheFor old.
func (c *Checker) Ready(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.checked.IsZero() && c.now().Sub(c.checked) < orDefault(c.CacheFor, DefaultCacheFor) {
		return c.last
	}
	// The check outlives a probe that gave up, so the next probe reuses
	// its answer instead of starting over.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), orDefault(c.Timeout, DefaultTimeout))
	defer cancel()
	c.last = c.check(ctx)
	c.checked = c.now()
	return c.last
}

func (c *Checker) check(ctx context.Context) error {
	if _, err := c.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &c.Bucket}); err != nil {
		return fmt.Errorf("s3: bucket %s: %w", c.Bucket, err)
	}
	if m := c.Encryption.Mode; m != types.ServerSideEncryptionAwsKms && m != types.ServerSideEncryptionAwsKmsDsse {
		return nil
	}
	in := &s3.CreateMultipartUploadInput{Bucket: &c.Bucket, Key: aws.String(c.Key)}
	in.ServerSideEncryption, in.SSEKMSKeyId, in.BucketKeyEnabled, in.SSEKMSEncryptionContext = c.Encryption.RequestFields()
	out, err := c.S3.CreateMultipartUpload(ctx, in)
	if err != nil {
		return fmt.Errorf("kms: creating an upload with key %s: %w", c.Encryption.KMSKeyID, err)
	}
	if _, err := c.S3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &c.Bucket, Key: aws.String(c.Key), UploadId: out.UploadId}); err != nil {
		return fmt.Errorf("s3: aborting the readiness upload: %w", err)
	}
	return nil
}

// orDefault returns d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (c *Checker) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}
