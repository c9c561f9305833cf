package tus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// SweepGrace is how long after its expiry an upload may still be written
// to by a PATCH that began before it (every request's S3 work is bounded
// by five minutes), plus a minute for clock skew. Sweep's default age is
// TTL + SweepGrace.
const SweepGrace = s3Timeout + time.Minute

// maxQuotaPages bounds the listing that counts a user's open uploads.
const maxQuotaPages = 10

// CodeTooManyOpenUploads is the error code of a creation refused because
// its user has MaxOpenUploads open uploads.
const CodeTooManyOpenUploads = "TOO_MANY_OPEN_UPLOADS"

// checkQuota refuses a creation when owner has MaxOpenUploads open
// uploads: open markers younger than the TTL (an expired upload no longer
// counts, even before the janitor removes its marker). Concurrent
// creations by one user can each see room for one more, so the limit
// can be exceeded by the number of creations racing.
func (h *Handler) checkQuota(ctx context.Context, owner string) error {
	max := h.cfg.MaxOpenUploads
	if max <= 0 {
		return nil
	}
	live := h.cfg.Now().Add(-h.cfg.TTL)
	open := 0
	err := listPages(ctx, h.api, h.cfg.Bucket, h.openDir(owner), maxQuotaPages, func(o listed) bool {
		if o.modified.After(live) {
			open++
		}
		return open < max
	})
	if errors.Is(err, errTooManyPages) {
		open = max
	} else if err != nil {
		return fmt.Errorf("counting open uploads: %w", err)
	}
	if open >= max {
		return &httpError{status: http.StatusTooManyRequests, code: CodeTooManyOpenUploads,
			msg: fmt.Sprintf("you have %d unfinished resumable uploads, the most allowed: finish or terminate one first", max)}
	}
	return nil
}

var errTooManyPages = errors.New("listing has more pages than allowed")

// listPages calls fn for every object under prefix, in at most maxPages
// pages (0: no bound; errTooManyPages beyond), until fn returns false.
func listPages(ctx context.Context, api API, bucket, prefix string, maxPages int, fn func(listed) bool) error {
	var token *string
	for page := 0; ; page++ {
		if maxPages > 0 && page == maxPages {
			return errTooManyPages
		}
		out, err := api.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String(prefix), ContinuationToken: token})
		if err != nil {
			return fmt.Errorf("listing %s: %w", prefix, err)
		}
		for _, o := range out.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			if !fn(listed{key: key, modified: aws.ToTime(o.LastModified), size: aws.ToInt64(o.Size)}) {
				return nil
			}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			return nil
		}
		token = out.NextContinuationToken
	}
}

// SweepReport is what one Sweep found and removed.
type SweepReport struct {
	// Expired is how many unfinished uploads older than the age were
	// found; Aborted how many of them were aborted (by this sweep or
	// meanwhile by another).
	Expired, Aborted int
	// TempObjects and TempBytes are the temporary objects (tails, staged
	// parts, locks, lengths, open markers) older than the age found;
	// TempDeleted how many of them were deleted.
	TempObjects, TempDeleted int
	TempBytes                int64
	// Err joins the failures; the next sweep tries again.
	Err error
}

// Sweep removes what expired uploads left in S3: it aborts the multipart
// uploads under Prefix initiated more than age ago, with their temporary
// objects, and deletes every object under TempPrefix last written more
// than age ago. age must be at least the TTL, so that everything it
// removes belongs to an upload that can no longer be continued (its
// objects were all written after its creation); 0 means TTL + SweepGrace.
// With dryRun nothing is removed. Sweeps on several instances may
// overlap: removing what is gone already counts as done.
func (h *Handler) Sweep(ctx context.Context, age time.Duration, dryRun bool) SweepReport {
	var r SweepReport
	age = cmp.Or(age, h.cfg.TTL+SweepGrace)
	if age < h.cfg.TTL {
		r.Err = fmt.Errorf("sweep age %v is shorter than the upload TTL %v: it would remove uploads that may still be continued", age, h.cfg.TTL)
		return r
	}
	cutoff := h.cfg.Now().Add(-age)
	var errs []error
	if h.cfg.Prefix == "" {
		errs = append(errs, errors.New("no prefix: unfinished uploads are not swept (the sweep never lists a whole bucket)"))
	} else if err := h.sweepUploads(ctx, cutoff, dryRun, &r); err != nil {
		errs = append(errs, err)
	}
	err := listPages(ctx, h.api, h.cfg.Bucket, h.cfg.TempPrefix, 0, func(o listed) bool {
		if !o.modified.Before(cutoff) {
			return true
		}
		r.TempObjects++
		r.TempBytes += o.size
		if dryRun {
			return true
		}
		_, err := h.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &h.cfg.Bucket, Key: aws.String(o.key)})
		if err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("deleting %s: %w", o.key, err))
			return ctx.Err() == nil
		}
		r.TempDeleted++
		return true
	})
	if err != nil {
		errs = append(errs, err)
	}
	r.Err = errors.Join(errs...)
	return r
}

// sweepUploads aborts the multipart uploads under Prefix initiated
// before cutoff and deletes their temporary objects.
func (h *Handler) sweepUploads(ctx context.Context, cutoff time.Time, dryRun bool, r *SweepReport) error {
	in := &s3.ListMultipartUploadsInput{Bucket: &h.cfg.Bucket, Prefix: aws.String(h.cfg.Prefix)}
	var errs []error
	for {
		out, err := h.api.ListMultipartUploads(ctx, in)
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("listing uploads under %s: %w", h.cfg.Prefix, err))...)
		}
		for _, u := range out.Uploads {
			key, id := aws.ToString(u.Key), aws.ToString(u.UploadId)
			if !strings.HasPrefix(key, h.cfg.Prefix) || id == "" || u.Initiated == nil || !u.Initiated.Before(cutoff) {
				continue
			}
			r.Expired++
			if dryRun {
				continue
			}
			// The owner is unknown here: the open marker goes by age.
			s := h.store(claims{Key: key, UploadID: id})
			s.openKey = ""
			if err := s.abort(ctx); err != nil && !errors.Is(err, errGone) {
				errs = append(errs, err)
				continue
			}
			r.Aborted++
			objs, err := s.deleteTemp(ctx)
			for _, o := range objs {
				r.TempBytes += o.size
			}
			r.TempObjects += len(objs)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			r.TempDeleted += len(objs)
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextKeyMarker) == "" {
			return errors.Join(errs...)
		}
		if ctx.Err() != nil {
			return errors.Join(append(errs, ctx.Err())...)
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}
