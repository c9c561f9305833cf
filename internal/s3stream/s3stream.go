// Package s3stream streams a request body of unknown length into an S3
// object with bounded memory: bodies smaller than one part go up with a single
// PutObject, larger ones as a multipart upload whose parts are sent by a fixed
// number of workers.
//
// # Configuration
//
// The identity the [Uploader] signs with needs at least these permissions on
// the bucket's objects:
//
//	s3:PutObject
//	s3:AbortMultipartUpload
//	s3:PutObjectTagging   (only when Options.Tags is true)
//	s3:DeleteObject       (for [Uploader.Delete], used to roll back, and to
//	                       remove writes that landed after a timeout)
//	s3:GetObject          (HeadObject, to recognise such late writes)
//	kms:GenerateDataKey, kms:Decrypt on the KMS key (SSE-KMS)
//
// # Implementation
//
// The first part is read before anything is sent to S3. Its first bytes are
// shown to Object.Inspect (the caller sniffs the content type there), and if the
// body ends within that part, the object is written with one PutObject. Otherwise
// a multipart upload is created and every part is read into a buffer taken from
// a pool of Concurrency+1 buffers, so that memory per upload is bounded by
// the largest part × (Concurrency+1) however large the body is. Buffers grow
// in chunks of [ChunkSize] as bytes arrive; a [BufferBudget] shared by all
// uploads of one gateway bounds the total, and an upload that waits for it
// longer than its MaxWait fails with [ErrMemoryWait]. On Linux the chunks
// are mapped outside the Go heap, so that the garbage collector's pace (and
// with it peak RSS) does not depend on how much part memory is in use, and
// free chunk memory beyond 32 MiB goes back to the kernel after 5 s unused.
//
// Over plain HTTP, a client whose transport dials through [WrapDial] sends
// each part from its chunks with writev, without copying it.
//
// The part size never depends on the size a client declares. With
// Object.MaxSize, it is chosen so that MaxSize fits in 10,000 parts;
// without, it doubles every 1,000 parts. Either way it is capped at
// Options.MaxPartSize (by default the budget / (Concurrency+1)), which also
// caps the largest object: see [Uploader.MaxObjectSize].
//
// Every part carries an S3 checksum (CRC32C by default) that S3 verifies on
// arrival. The uploader computes it while reading, on bytes just received,
// and sets it on the request, so the SDK neither hashes the part again nor
// sends it with an aws-chunked trailer (over HTTPS the body goes as
// UNSIGNED-PAYLOAD with the signed checksum header). With a CRC algorithm the
// uploader also combines the parts' CRCs into the CRC of the whole object
// (no second pass, see package crccombine) and creates multipart uploads
// with ChecksumType FULL_OBJECT: S3 checks that value on completion and
// stores it as the object's checksum ([Result].Checksum; with Options.Tags
// also the tag named after the algorithm, e.g. "crc32c", next to "size").
//
// With Options.SHA256 the full-object SHA-256 is computed too. When it is
// known before the object is created (single PutObject), it is stored as
// user metadata "sha256" and used as the SigV4 payload hash, so the SDK does
// not hash the body a second time; with Options.Tags it is also the tag
// "sha256" (after completion for multipart uploads). Parts are signed with
// their own SHA-256 (computed by the SDK) unless the client was built with
// [UnsignedPayload].
//
// # Considerations
//
// On any failure (body read error, limit exceeded, S3 error, cancelled context)
// the multipart upload is aborted with a context detached from the request:
// one attempt synchronously, then retries with backoff in the background for up to
// Options.AbortTimeout, so a failed upload leaves no parts behind even when S3 was
// briefly unreachable. [Uploader.Wait] waits for those retries, up to a
// timeout.
//
// [Sizing] holds the rules a handler's part_size, concurrency,
// memory_limit, max_file_size and max_memory_per_client must follow, and
// the per-client memory default.
package s3stream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// Defaults for zero Options fields.
const (
	DefaultPartSize     int64 = 16 << 20
	DefaultConcurrency        = 4
	DefaultAbortTimeout       = 2 * time.Minute
	DefaultCallTimeout        = 2 * time.Minute
)

// Errors returned by [Uploader.Upload]. Callers map them to HTTP statuses:
// ErrTooLarge to 413, ErrRead to 400 (or 499 when the request context was
// cancelled), ErrStorageTimeout to 504 and ErrStorage to 502. Errors returned by
// Object.Inspect are passed through wrapped, and context errors are returned as
// they are (errors.Is(err, context.Canceled)).
var (
	ErrTooLarge       = errors.New("object exceeds the size limit")
	ErrRead           = errors.New("reading request body")
	ErrStorage        = errors.New("storage request failed")
	ErrStorageTimeout = errors.New("storage request timed out")
)

// API is the part of *s3.Client the uploader calls.
type API interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(context.Context, *s3.UploadPartInput, ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	PutObjectTagging(context.Context, *s3.PutObjectTaggingInput, ...func(*s3.Options)) (*s3.PutObjectTaggingOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
}

// Encryption is the server-side encryption of new objects.
type Encryption = s3limits.Encryption

// Options tune an [Uploader]. Zero values mean the defaults.
type Options struct {
	// PartSize is the smallest part size; it grows automatically (see the
	// package documentation). Default 16 MiB, at least 5 MiB.
	PartSize int64
	// Concurrency is how many parts are sent at once. Default 4.
	Concurrency int
	// Checksum is the algorithm of the per-part checksum S3 verifies; ""
	// means CRC32C.
	Checksum types.ChecksumAlgorithm
	// Encryption is applied to every object.
	Encryption Encryption
	// SHA256 computes the full-object SHA-256 while reading (Result.SHA256,
	// user metadata "sha256" of single PutObjects, tag "sha256"). It costs
	// about 0.5-0.8 CPU-seconds per GiB even with SHA extensions, more than
	// the rest of the upload; S3's verification does not need it.
	SHA256 bool
	// Tags stores "size", the full-object checksum (tag named after the
	// algorithm, e.g. "crc32c", base64 as S3 shows it) and, with SHA256,
	// "sha256" as object tags.
	Tags bool
	// CallTimeout bounds every S3 call. Default 2 minutes.
	CallTimeout time.Duration
	// AbortTimeout is how long a failed multipart upload's abort is retried.
	// Default 2 minutes.
	AbortTimeout time.Duration
	// Budget, when set, bounds the part buffers of all uploads together.
	Budget *BufferBudget
	// MaxPartSize caps the part size. Default: Budget.Limit() /
	// (Concurrency+1) rounded down to whole MiB when a budget is set, else
	// S3's 5 GiB; never below PartSize.
	MaxPartSize int64
	// OnAbortFailure, when set, is called when a multipart upload could not
	// be aborted within AbortTimeout.
	OnAbortFailure func(bucket, key, uploadID string, err error)
}

// Object describes what to write.
type Object struct {
	Bucket      string
	Key         string
	ContentType string
	// ContentDisposition, when set, is stored with the object.
	ContentDisposition string
	// Metadata is stored as user metadata (x-amz-meta-*). The uploader adds
	// "sha256" when it is known before the object is created.
	Metadata map[string]string
	// Size is the body's length if known, else -1. It is only checked
	// against the limit up front; it does not choose the part size.
	Size int64
	// MaxSize is the largest body accepted; 0 means S3's limit.
	MaxSize int64
	// Inspect, when set, is called once with the first bytes of the body
	// (up to sniffLen, fewer only when the body is shorter) before anything is
	// sent to S3. It returns the content type to store, or an error that
	// rejects the upload.
	Inspect func(head []byte) (contentType string, err error)
	// SniffLen is how many bytes Inspect wants; default 3072.
	SniffLen int
	// Account, when set, is the budget account the upload's buffers are
	// charged to (the caller's, shared with other memory of the same
	// request); otherwise the upload opens its own.
	Account *Account
}

// Result describes a stored object.
type Result struct {
	Bucket      string
	Key         string
	ETag        string
	VersionID   string
	ContentType string
	Size        int64
	// SHA256 is the lowercase hex SHA-256 of the whole body; "" unless
	// Options.SHA256.
	SHA256 string
	// Checksum is the object's checksum as S3 verified and stored it.
	Checksum Checksum
	// Parts is the number of parts; 0 for a single PutObject.
	Parts int
	// UploadID of the multipart upload, "" for a single PutObject.
	UploadID string
}

// Checksum is an object's S3 checksum.
type Checksum struct {
	// Algorithm is Options.Checksum: CRC32C, CRC32, CRC64NVME, SHA1 or SHA256.
	Algorithm string
	// Type is FULL_OBJECT (the checksum of the whole body: single
	// PutObjects, and multipart uploads with a CRC) or COMPOSITE (a checksum
	// of the parts' checksums: multipart uploads with SHA1 or SHA256).
	Type string
	// Value is the checksum in base64, as S3 shows it (HeadObject with
	// ChecksumMode ENABLED, GetObjectAttributes). A composite value is
	// S3's, "" when S3 did not report it.
	Value string
}

// Uploader streams bodies to S3. It is safe for concurrent use.
type Uploader struct {
	api  API
	opts Options
	wg   sync.WaitGroup
}

// New returns an Uploader that sends requests with api.
func New(api API, opts Options) *Uploader {
	if opts.PartSize <= 0 {
		opts.PartSize = DefaultPartSize
	}
	opts.PartSize = max(opts.PartSize, s3limits.MinPartSize)
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	opts.Checksum = cmp.Or(opts.Checksum, types.ChecksumAlgorithmCrc32c)
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.AbortTimeout <= 0 {
		opts.AbortTimeout = DefaultAbortTimeout
	}
	if opts.MaxPartSize <= 0 {
		opts.MaxPartSize = s3limits.MaxPartSize
		if opts.Budget != nil {
			opts.MaxPartSize = PartCap(opts.Budget.Limit(), opts.Concurrency)
		}
	}
	opts.MaxPartSize = min(max(opts.MaxPartSize, opts.PartSize), s3limits.MaxPartSize)
	if opts.Budget != nil {
		opts.Budget.keepReserve(opts.MaxPartSize)
	}
	return &Uploader{api: api, opts: opts}
}

// PartCap is the largest part that a budget of memoryLimit bytes shared
// with concurrency parts in flight allows: memoryLimit / (concurrency+1),
// rounded down to whole MiB.
func PartCap(memoryLimit int64, concurrency int) int64 {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	return (memoryLimit / int64(concurrency+1)) &^ (1<<20 - 1)
}

// PartSizeFor is the part size that makes maxSize fit in 10,000 parts of at
// least partSize bytes, in whole MiB (before any cap).
func PartSizeFor(partSize, maxSize int64) int64 {
	need := (maxSize + s3limits.MaxParts - 1) / s3limits.MaxParts
	need = (need + 1<<20 - 1) &^ (1<<20 - 1) // whole MiB
	return max(partSize, need)
}

// Wait blocks until background abort retries have finished, or timeout
// has passed; they go on after it.
func (u *Uploader) Wait(timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		u.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// MemoryBound is the most part-buffer memory one upload can hold.
func (u *Uploader) MemoryBound() int64 {
	return u.opts.MaxPartSize * int64(u.opts.Concurrency+1)
}

// MaxPartSize is the largest part this uploader sends.
func (u *Uploader) MaxPartSize() int64 { return u.opts.MaxPartSize }

// MaxObjectSize is the largest object an upload with the given limit (0:
// none) accepts: the limit, S3's 5 TiB, or what 10,000 parts of at most
// MaxPartSize hold, whichever is smallest.
func (u *Uploader) MaxObjectSize(maxSize int64) int64 {
	if maxSize > 0 && maxSize < s3limits.MaxObjectSize {
		return min(u.partSize(maxSize, 1)*s3limits.MaxParts, maxSize)
	}
	var total int64
	for tier := range s3limits.MaxParts / 1000 {
		total += 1000 * u.partSize(0, tier*1000+1)
	}
	return min(total, s3limits.MaxObjectSize)
}

// partSize returns the size of part n (1-based) of an upload whose limit is
// maxSize (0: none). The size the client declares plays no part: a client
// cannot make the gateway set aside larger buffers by announcing a huge body.
func (u *Uploader) partSize(maxSize int64, n int) int64 {
	ps := u.opts.PartSize
	if maxSize > 0 {
		return min(PartSizeFor(ps, maxSize), u.opts.MaxPartSize)
	}
	// Unknown size: double every 1,000 parts.
	shift := (n - 1) / 1000
	for ; shift > 0 && ps < u.opts.MaxPartSize; shift-- {
		ps *= 2
	}
	return min(ps, u.opts.MaxPartSize)
}

// Delete removes an object written by this uploader (a rollback). It retries
// with backoff for up to AbortTimeout, ignoring the request's cancellation.
func (u *Uploader) Delete(ctx context.Context, bucket, key, versionID string) error {
	in := &s3.DeleteObjectInput{Bucket: &bucket, Key: &key}
	if versionID != "" {
		in.VersionId = &versionID
	}
	return u.retry(context.WithoutCancel(ctx), func(ctx context.Context) error {
		_, err := u.api.DeleteObject(ctx, in)
		return err
	})
}

// retry calls fn until it succeeds or AbortTimeout has passed.
func (u *Uploader) retry(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, u.opts.AbortTimeout)
	defer cancel()
	backoff := 100 * time.Millisecond
	for {
		callCtx, callCancel := context.WithTimeout(ctx, min(u.opts.CallTimeout, 30*time.Second))
		err := fn(callCtx)
		callCancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// storageError classifies an error returned by an S3 call.
func storageError(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		return fmt.Errorf("%s: %w", op, ctxErr)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w: %s: %v", ErrStorageTimeout, op, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrStorage, op, err)
}

// readError classifies an error from reading the body.
func readError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w: %w", ErrRead, ctxErr)
	}
	if errors.Is(err, ErrTooLarge) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrRead, err)
}
