// Package createonly finds out whether an S3 server honours conditional
// writes: If-None-Match: * on PutObject (and CompleteMultipartUpload), which
// makes S3 store an object only if its key holds none yet. Signed into a
// presigned upload URL, the header makes the URL create-only: a replay gets
// 412 Precondition Failed instead of overwriting what the first request
// stored.
//
// # How support is detected
//
// [Probe] writes a small object under a fresh key with If-None-Match: *,
// writes it again the same way, and deletes it. A server that refuses the
// second write with 412 (or 409 ConditionalRequestConflict) supports
// conditional writes; one that accepts it ignores the header; one that
// answers 501 NotImplemented does not support it. Anything else (the
// server is down, the credentials may not write) decides nothing.
//
// A [Detector] runs the probe once, on first use and never at start-up
// (`caddy validate` provisions modules too, and must not write to S3),
// caches a decided answer for the life of the process, and probes again
// after RetryAfter while undecided; meanwhile it answers false, so uploads
// keep working as they did without the header.
//
// The probe covers PutObject. S3 (since August 2024) and SeaweedFS evaluate
// If-None-Match on CompleteMultipartUpload the same way, and a server that
// honours it on one is assumed to honour it on the other.
package createonly

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/internal/awserr"
)

// Support is what a probe found out.
type Support int

// The answers of a probe.
const (
	Unknown     Support = iota // the probe could not decide
	Supported                  // the server refused the second write
	Unsupported                // the server stored the second write, or refused the header
)

func (s Support) String() string {
	switch s {
	case Supported:
		return "supported"
	case Unsupported:
		return "unsupported"
	}
	return "unknown"
}

// API is the part of *s3.Client the probe calls.
type API interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// probeBody is what the probe object holds.
var probeBody = []byte("upload gateway: conditional write probe\n")

// Probe finds out whether the server behind api honours If-None-Match: *
// on PutObject (see the package documentation). in names the bucket and
// the probe's key, which must be unused, and carries whatever else the
// bucket requires of a write (its encryption, say); Probe sets the body and
// If-None-Match. The probe object is deleted again, every version it wrote
// in a versioned bucket, even when ctx ends. The
// error says why the answer is Unknown (or, with Unsupported, which error
// refused the header).
func Probe(ctx context.Context, api API, in s3.PutObjectInput) (Support, error) {
	if aws.ToString(in.Bucket) == "" || aws.ToString(in.Key) == "" {
		return Unknown, errors.New("createonly: the probe needs a bucket and a key")
	}
	// In a versioned bucket every write is a version of its own, and a
	// delete without a version id only adds a delete marker: remember the
	// versions written, to delete exactly those.
	var versions []*string
	put := func() error {
		req := in
		req.Body = bytes.NewReader(probeBody)
		req.ContentLength = aws.Int64(int64(len(probeBody)))
		req.IfNoneMatch = aws.String("*")
		out, err := api.PutObject(ctx, &req)
		if err == nil {
			versions = append(versions, out.VersionId)
		}
		return err
	}
	what := "writing the probe object"
	err := put()
	if err == nil {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			for _, v := range versions {
				_, _ = api.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: in.Bucket, Key: in.Key, VersionId: v})
			}
		}()
		what += " again"
		if err = put(); err == nil {
			return Unsupported, nil // the header was ignored: the object was overwritten
		}
	}
	switch {
	case PreconditionFailed(err):
		return Supported, nil // the key was taken: the condition was checked
	case notImplemented(err):
		return Unsupported, fmt.Errorf("createonly: the server refuses If-None-Match: %w", err)
	}
	return Unknown, fmt.Errorf("createonly: %s: %w", what, err)
}

// PreconditionFailed reports whether err is S3's refusal of a conditional
// write: 412 PreconditionFailed, or 409 ConditionalRequestConflict (a
// concurrent write to the same key).
func PreconditionFailed(err error) bool {
	code := awserr.Code(err)
	return code == "PreconditionFailed" || code == "ConditionalRequestConflict" || awserr.Status(err) == http.StatusPreconditionFailed
}

func notImplemented(err error) bool {
	return awserr.Code(err) == "NotImplemented" || awserr.Status(err) == http.StatusNotImplemented
}

// Defaults of a Detector's zero fields.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultRetryAfter = time.Minute
)

// Detector runs a probe on first use and caches its answer. It is safe for
// concurrent use; the zero value needs Probe set.
type Detector struct {
	// Probe finds out the answer, e.g. a call of [Probe]. Required.
	Probe func(context.Context) (Support, error)
	// Timeout bounds one probe. Default 5 seconds.
	Timeout time.Duration
	// RetryAfter is how long an undecided answer lasts before the next
	// use probes again. Default 1 minute.
	RetryAfter time.Duration
	// Report, when set, is called with the outcome of every probe
	// (logging).
	Report func(Support, error)

	mu      sync.Mutex
	state   Support
	running chan struct{} // closed when the running probe ends; nil when none runs
	tried   time.Time     // when the last probe started
	now     func() time.Time
}

// Supported reports whether the server honours conditional writes. The
// first call starts the probe, as does the first call RetryAfter after an
// undecided probe; callers wait for a running probe until ctx ends. While
// the answer is unknown it is false.
func (d *Detector) Supported(ctx context.Context) bool {
	d.mu.Lock()
	if d.state != Unknown {
		defer d.mu.Unlock()
		return d.state == Supported
	}
	now := time.Now
	if d.now != nil {
		now = d.now
	}
	retry := d.RetryAfter
	if retry <= 0 {
		retry = DefaultRetryAfter
	}
	ch := d.running
	if ch == nil && (d.tried.IsZero() || now().Sub(d.tried) >= retry) {
		ch = make(chan struct{})
		d.running, d.tried = ch, now()
		// The probe outlives a caller that gives up waiting, but not
		// Timeout.
		go d.run(context.WithoutCancel(ctx), ch)
	}
	d.mu.Unlock()
	if ch == nil {
		return false // undecided; the next probe is not due yet
	}
	select {
	case <-ch:
	case <-ctx.Done():
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state == Supported
}

func (d *Detector) run(ctx context.Context, done chan struct{}) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := d.Probe(ctx)
	if d.Report != nil {
		d.Report(s, err)
	}
	d.mu.Lock()
	d.state, d.running = s, nil
	d.mu.Unlock()
	close(done)
}
