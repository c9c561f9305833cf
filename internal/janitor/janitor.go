// Package janitor finds and aborts orphaned S3 multipart uploads: uploads
// that a gateway created but never completed or aborted, because the
// instance crashed mid-upload, a client gave up on a presigned multipart
// upload, or S3 was unreachable for longer than the abort retries. Until
// they are aborted, their parts are stored, and billed, without being
// visible as objects.
//
// # Configuration
//
// Build one [Janitor] per bucket with [New] and start [Janitor.Run] in a
// goroutine tied to the module's lifetime context:
//
//	j, err := janitor.New(s3Client, janitor.Options{
//		Bucket:   "uploads",
//		Prefixes: []string{"incoming/"},
//		MaxAge:   25 * time.Hour, // longer than the upload token lifetime
//	})
//	...
//	go j.Run(ctx) // returns when ctx is done
//
// [Every] is Run's loop (a first sweep after a random part of the
// interval, then one every interval), for other sweepers: the tus janitor
// of module/resumable uses it.
//
// Options.Prefixes is required and may not contain "": the janitor never
// sweeps a whole bucket by accident, so uploads that other applications
// keep open in the same bucket are safe as long as they live outside the
// gateway's prefixes.
//
// Options.MaxAge must be longer than any upload may legitimately stay open.
// The presigned multipart API keeps an upload open for the lifetime of its
// upload token (fileapi's UploadTTL, 24 hours by default), so MaxAge must
// exceed that lifetime, plus a margin for a CompleteMultipartUpload still in
// flight when the token expires and for the skew between the janitor's
// clock and S3's (Initiated is S3's clock). With both at their defaults of
// 24 hours the margin is zero: raise MaxAge (25 hours) or lower UploadTTL.
//
// The identity the janitor signs with needs these permissions:
//
//	s3:ListBucketMultipartUploads on the bucket
//	s3:ListMultipartUploadParts   on the objects under the prefixes
//	s3:AbortMultipartUpload       on the objects under the prefixes
//
// No KMS permission is needed, even for uploads encrypted with SSE-KMS.
//
// # Implementation
//
// A sweep lists the multipart uploads under each prefix, page by page
// (KeyMarker and UploadIdMarker). An upload is an orphan when it was
// initiated more than MaxAge before Options.Now: one initiated exactly MaxAge
// ago is not, and one whose Initiated time is missing is skipped. Keys are
// checked against the prefix again on the client, so a server that ignores
// the Prefix parameter cannot make the janitor touch other keys. Prefixes
// that lie under another configured prefix are dropped by [New], so no
// upload is listed twice.
//
// For each orphan the janitor sums the sizes of its parts with ListParts (at
// most [MaxPartPages] pages, 10,000 parts on AWS, so the work per upload is
// bounded) and then aborts it, unless Options.DryRun is set. Uploads are
// handled one at a time and every S3 call is bounded by a one-minute
// timeout, so a sweep puts little load on S3 and never hangs on one call.
//
// The result of each sweep is a [Report], passed to Options.OnSweep (the
// metrics hook) and returned by [Janitor.Sweep]. Failures do not stop a
// sweep: an upload that cannot be aborted counts in Report.Failed, a prefix
// that cannot be listed is reported in Report.Err, and the sweep goes on
// with the next upload or prefix. Only a cancelled context stops it early.
//
// # Considerations
//
// Any number of gateway instances may run a janitor on the same bucket. An
// upload aborted by another instance between listing and abort answers
// NoSuchUpload, which counts as aborted, so concurrent sweeps are safe;
// [Janitor.Run] starts after a random delay of up to a tenth of
// Options.Interval so that instances do not sweep in lockstep.
//
// A bucket lifecycle rule with AbortIncompleteMultipartUpload does the same
// job inside S3 and is the better choice where it is available; the janitor
// is for S3 servers without lifecycle rules, for buckets whose rules the
// gateway's operators do not control, and for measuring the orphans
// (Report.OrphanBytes) before aborting them (Options.DryRun).
package janitor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/internal/awserr"
)

// Defaults and limits of [Options].
const (
	DefaultMaxAge   = 24 * time.Hour
	MinMaxAge       = time.Minute
	DefaultInterval = time.Hour
	// MaxPartPages is how many ListParts pages are read per orphan to sum
	// its size; parts beyond them are not counted in Report.OrphanBytes.
	MaxPartPages = 10
)

// callTimeout bounds each S3 call of a sweep.
const callTimeout = time.Minute

// Errors. New wraps ErrInvalidOptions. Report.Err joins, as needed, errors
// wrapping ErrList and ErrAbort, and the context's error when the sweep was
// cancelled (errors.Is(r.Err, context.Canceled)).
var (
	// ErrInvalidOptions means Options were rejected by New.
	ErrInvalidOptions = errors.New("invalid janitor options")
	// ErrList means that the uploads under a prefix, or the parts of an
	// orphan, could not be listed: Report.Found or Report.OrphanBytes may
	// be lower than what is stored.
	ErrList = errors.New("listing multipart uploads failed")
	// ErrAbort means that at least one orphan could not be aborted
	// (Report.Failed > 0); the next sweep tries again.
	ErrAbort = errors.New("aborting multipart uploads failed")
)

// API is the part of *s3.Client the janitor calls.
type API interface {
	ListMultipartUploads(context.Context, *s3.ListMultipartUploadsInput, ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
	ListParts(context.Context, *s3.ListPartsInput, ...func(*s3.Options)) (*s3.ListPartsOutput, error)
	AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// Options configure a [Janitor]. Zero values mean the defaults.
type Options struct {
	// Bucket is the bucket to sweep. Required.
	Bucket string
	// Prefixes are the key prefixes whose uploads may be aborted; uploads
	// under other keys are never touched. Required, and no prefix may be
	// "" (use the gateway's own prefixes, never the whole bucket).
	Prefixes []string
	// MaxAge is how long after its initiation an upload becomes an orphan.
	// It must be longer than the upload token lifetime of the presigned
	// multipart API (see the package documentation). Default 24 hours, at
	// least one minute.
	MaxAge time.Duration
	// Interval is the pause between the end of one sweep and the start of
	// the next in [Janitor.Run]. Default one hour.
	Interval time.Duration
	// DryRun finds and measures the orphans but does not abort them.
	DryRun bool
	// Now returns the current time; default time.Now.
	Now func() time.Time
	// OnSweep, if set, is called with the report of every sweep, on the
	// sweeping goroutine, before Sweep returns. It is the metrics hook and
	// should not block.
	OnSweep func(Report)
}

// Report is the result of one sweep. Found == Aborted + Failed unless
// DryRun is set or the sweep was cancelled.
type Report struct {
	// Found is how many orphans were seen.
	Found int
	// Aborted is how many orphans were aborted, by this sweep or, when
	// S3 answered NoSuchUpload, by someone else meanwhile.
	Aborted int
	// Failed is how many orphans could not be aborted.
	Failed int
	// OrphanBytes is the sum of the sizes of the listed parts of the
	// orphans found.
	OrphanBytes int64
	// Duration is how long the sweep took.
	Duration time.Duration
	// Err is nil when every prefix was listed and every orphan measured
	// and aborted; see the package's errors for what it wraps.
	Err error
}

// Janitor aborts orphaned multipart uploads. Its methods may be called
// concurrently.
type Janitor struct {
	api  API
	opts Options
}

// New checks opts, applies the defaults and returns a Janitor. It does no
// network I/O.
func New(api API, opts Options) (*Janitor, error) {
	switch {
	case api == nil:
		return nil, fmt.Errorf("%w: no S3 client", ErrInvalidOptions)
	case opts.Bucket == "":
		return nil, fmt.Errorf("%w: no bucket", ErrInvalidOptions)
	case len(opts.Prefixes) == 0:
		return nil, fmt.Errorf("%w: no prefixes (the janitor never sweeps a whole bucket)", ErrInvalidOptions)
	case slices.Contains(opts.Prefixes, ""):
		return nil, fmt.Errorf("%w: empty prefix (the janitor never sweeps a whole bucket)", ErrInvalidOptions)
	case opts.MaxAge < 0, opts.MaxAge > 0 && opts.MaxAge < MinMaxAge:
		return nil, fmt.Errorf("%w: max age %v is shorter than %v", ErrInvalidOptions, opts.MaxAge, MinMaxAge)
	case opts.Interval < 0:
		return nil, fmt.Errorf("%w: negative interval %v", ErrInvalidOptions, opts.Interval)
	}
	opts.MaxAge = cmp.Or(opts.MaxAge, DefaultMaxAge)
	opts.Interval = cmp.Or(opts.Interval, DefaultInterval)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.Prefixes = outermost(opts.Prefixes)
	return &Janitor{api: api, opts: opts}, nil
}

// outermost returns the prefixes sorted, without duplicates and without
// those under another prefix of the list.
func outermost(prefixes []string) []string {
	sorted := slices.Sorted(slices.Values(prefixes))
	var out []string
	for _, p := range sorted {
		// Keys under a prefix form one run in sorted order, so only the
		// last kept prefix can cover p.
		if len(out) > 0 && strings.HasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// Run sweeps every Options.Interval until ctx is done (see [Every]).
func (j *Janitor) Run(ctx context.Context) {
	Every(ctx, j.opts.Interval, func(ctx context.Context) { j.Sweep(ctx) })
}

// Every calls sweep every interval until ctx is done, the first time after
// a random delay of up to interval/10, so that instances started together
// do not sweep together. It returns once ctx is done and the call in
// progress, if any, has returned.
func Every(ctx context.Context, interval time.Duration, sweep func(context.Context)) {
	t := time.NewTimer(jitter(interval / 10))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ctx.Err() != nil {
			return
		}
		sweep(ctx)
		t.Reset(interval)
	}
}

// jitter returns a random duration in [0, max].
func jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return rand.N(max + 1)
}

// sweep is the state of one sweep.
type sweep struct {
	Report
	cutoff       time.Time // uploads initiated before it are orphans
	errs         []error
	partsFailed  int
	firstPartErr error
	firstAbort   error
}

// Sweep makes one pass over the prefixes, aborting the orphans it finds
// (see the package documentation), and returns its report, which it also
// passes to Options.OnSweep. It stops early only when ctx is done.
func (j *Janitor) Sweep(ctx context.Context) Report {
	start := time.Now()
	s := &sweep{cutoff: j.opts.Now().Add(-j.opts.MaxAge)}
	for _, prefix := range j.opts.Prefixes {
		if err := j.sweepPrefix(ctx, s, prefix); err != nil {
			if ctx.Err() != nil {
				break
			}
			s.errs = append(s.errs, err)
		}
	}
	if s.partsFailed > 0 {
		s.errs = append(s.errs, fmt.Errorf("%w: parts of %d orphans (first: %v)", ErrList, s.partsFailed, s.firstPartErr))
	}
	if s.Failed > 0 {
		s.errs = append(s.errs, fmt.Errorf("%w: %d of %d orphans (first: %v)", ErrAbort, s.Failed, s.Found, s.firstAbort))
	}
	if err := ctx.Err(); err != nil {
		s.errs = append(s.errs, err)
	}
	r := s.Report
	r.Err = errors.Join(s.errs...)
	r.Duration = time.Since(start)
	if j.opts.OnSweep != nil {
		j.opts.OnSweep(r)
	}
	return r
}

// sweepPrefix handles the uploads under one prefix. It returns an error
// when the listing failed or ctx is done.
func (j *Janitor) sweepPrefix(ctx context.Context, s *sweep, prefix string) error {
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(j.opts.Bucket), Prefix: aws.String(prefix)}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		out, err := call(ctx, j.api.ListMultipartUploads, in)
		if err != nil {
			return fmt.Errorf("%w: prefix %q: %v", ErrList, prefix, err)
		}
		for _, u := range out.Uploads {
			if err := ctx.Err(); err != nil {
				return err
			}
			key, id := aws.ToString(u.Key), aws.ToString(u.UploadId)
			if !strings.HasPrefix(key, prefix) || id == "" || u.Initiated == nil || !u.Initiated.Before(s.cutoff) {
				continue
			}
			j.handleOrphan(ctx, s, key, id)
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		nextKey, nextID := aws.ToString(out.NextKeyMarker), aws.ToString(out.NextUploadIdMarker)
		if nextKey == "" || (nextKey == aws.ToString(in.KeyMarker) && nextID == aws.ToString(in.UploadIdMarker)) {
			return fmt.Errorf("%w: prefix %q: truncated listing without a new marker", ErrList, prefix)
		}
		in.KeyMarker, in.UploadIdMarker = aws.String(nextKey), nil
		if nextID != "" {
			in.UploadIdMarker = aws.String(nextID)
		}
	}
}

// handleOrphan measures one orphan and aborts it.
func (j *Janitor) handleOrphan(ctx context.Context, s *sweep, key, id string) {
	s.Found++
	n, err := j.partBytes(ctx, key, id)
	s.OrphanBytes += n
	if err != nil && ctx.Err() == nil && !awserr.NoSuchUpload(err) {
		if s.partsFailed == 0 {
			s.firstPartErr = fmt.Errorf("%s (upload %s): %v", key, id, err)
		}
		s.partsFailed++
	}
	if j.opts.DryRun || ctx.Err() != nil {
		return
	}
	_, err = call(ctx, j.api.AbortMultipartUpload, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(j.opts.Bucket), Key: aws.String(key), UploadId: aws.String(id),
	})
	switch {
	case err == nil, awserr.NoSuchUpload(err):
		s.Aborted++
		return
	case ctx.Err() != nil:
		return // cancelled: whether S3 aborted it is unknown
	}
	if s.Failed == 0 {
		s.firstAbort = fmt.Errorf("%s (upload %s): %v", key, id, err)
	}
	s.Failed++
}

// partBytes sums the sizes of an upload's parts over at most MaxPartPages
// pages.
func (j *Janitor) partBytes(ctx context.Context, key, id string) (int64, error) {
	in := &s3.ListPartsInput{Bucket: aws.String(j.opts.Bucket), Key: aws.String(key), UploadId: aws.String(id)}
	var n int64
	for range MaxPartPages {
		out, err := call(ctx, j.api.ListParts, in)
		if err != nil {
			return n, err
		}
		for _, p := range out.Parts {
			n += aws.ToInt64(p.Size)
		}
		next := aws.ToString(out.NextPartNumberMarker)
		if !aws.ToBool(out.IsTruncated) || next == "" || next == aws.ToString(in.PartNumberMarker) {
			return n, nil
		}
		in.PartNumberMarker = aws.String(next)
	}
	return n, nil
}

// call makes one S3 call bounded by callTimeout.
func call[In, Out any](ctx context.Context, f func(context.Context, In, ...func(*s3.Options)) (Out, error), in In) (Out, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return f(ctx, in)
}
