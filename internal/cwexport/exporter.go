package cwexport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"
)

// API is the part of the CloudWatch client the exporter calls.
// *cloudwatch.Client satisfies it.
type API interface {
	PutMetricData(ctx context.Context, in *cloudwatch.PutMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// Defaults of [Options].
const (
	DefaultNamespace  = "UploadGateway"
	DefaultInterval   = 60 * time.Second
	DefaultQueueSize  = 10000
	DefaultMaxRetries = 3

	// finalFlushTimeout bounds the flush Run does when its context is done.
	finalFlushTimeout = 5 * time.Second
)

// Options configure an [Exporter]. The zero value of each field selects
// its default.
type Options struct {
	// Namespace of the metrics. Default "UploadGateway".
	Namespace string
	// Interval between flushes; it also bounds how long one flush,
	// retries included, may take. Default 60s.
	Interval time.Duration
	// QueueSize is how many observations may wait for Run. When the
	// queue is full, Observe drops the observation and counts it; it
	// never blocks. Default 10000.
	QueueSize int
	// MaxRetries is how many times a failed request is retried, with
	// exponential backoff and jitter, within the Interval. Default 3; a
	// negative value disables retries.
	MaxRetries int
	// OnDrop, if set, is called with the number of observations lost
	// each time some are: from the goroutine calling Observe when the
	// queue is full or the observation is invalid, and from the flushing
	// goroutine when a request is given up. It must be fast and safe for
	// concurrent use.
	OnDrop func(n int)
	// OnError, if set, is called from the flushing goroutine with the
	// error of every failed PutMetricData attempt, retried or not.
	OnError func(err error)
	// Now gives the time stamped on datums. Default time.Now.
	Now func() time.Time
}

// Exporter aggregates observations and sends them to CloudWatch with
// PutMetricData. Build it with [New]; run [Exporter.Run] in one
// goroutine. Observe, Flush and Dropped are safe for concurrent use.
type Exporter struct {
	api   API
	opts  Options
	queue chan observation

	dropped atomic.Int64

	mu     sync.Mutex            // guards the fields below
	window map[string]*aggregate // by key of name, unit and dimensions
	start  time.Time             // when the window opened
	keyBuf []byte
}

// observation is one call of Observe, waiting in the queue.
type observation struct {
	name  string
	unit  types.StandardUnit
	value float64
	dims  []types.Dimension // owned by the exporter
}

// New returns an exporter that sends through api, which must not be nil.
func New(api API, opts Options) *Exporter {
	opts.Namespace = cmp.Or(opts.Namespace, DefaultNamespace)
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	opts.MaxRetries = max(cmp.Or(opts.MaxRetries, DefaultMaxRetries), 0)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Exporter{
		api:    api,
		opts:   opts,
		queue:  make(chan observation, opts.QueueSize),
		window: make(map[string]*aggregate),
		start:  opts.Now(),
	}
}

// Observe records one value of the metric name in unit (None if empty)
// with the given dimensions, whose order does not matter. It never
// blocks: when the queue is full or the observation is one CloudWatch
// would reject (see the package documentation), the observation is
// dropped and counted. Observe copies dims but not the strings they
// point to.
func (e *Exporter) Observe(name string, unit types.StandardUnit, value float64, dims ...types.Dimension) {
	if !validObservation(name, value, dims) {
		e.drop(1)
		return
	}
	o := observation{name: name, unit: cmp.Or(unit, types.StandardUnitNone), value: value}
	if len(dims) > 0 {
		o.dims = append(make([]types.Dimension, 0, len(dims)), dims...)
	}
	select {
	case e.queue <- o:
	default:
		e.drop(1)
	}
}

// Dropped returns how many observations did not reach CloudWatch so far.
func (e *Exporter) Dropped() int64 {
	return e.dropped.Load()
}

func (e *Exporter) drop(n int) {
	if n <= 0 {
		return
	}
	e.dropped.Add(int64(n))
	if e.opts.OnDrop != nil {
		e.opts.OnDrop(n)
	}
}

// Run aggregates queued observations and flushes them every Interval
// until ctx is done, then flushes what is left, waiting at most 5
// seconds, and returns. Errors go to OnError and OnDrop. Call Run once.
func (e *Exporter) Run(ctx context.Context) {
	t := time.NewTicker(e.opts.Interval)
	defer t.Stop()
	for {
		select {
		case o := <-e.queue:
			e.mu.Lock()
			e.addLocked(o)
			e.drainLocked(256) // take a burst under one lock
			e.mu.Unlock()
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, e.opts.Interval)
			_ = e.Flush(fctx) // reported through OnError and OnDrop
			cancel()
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlushTimeout)
			_ = e.Flush(fctx)
			cancel()
			return
		}
	}
}

// Flush aggregates whatever is queued and sends everything aggregated so
// far, in as many requests as the API limits require, retrying failed
// requests (see [Options.MaxRetries]) while ctx allows. It returns the
// errors of the requests that were given up, joined; each wraps the
// error of the API. The observations of a request that was given up are
// dropped and counted, except when ctx was cancelled (not timed out):
// then what was not sent is kept for the next flush. A request cancelled
// while in flight may have reached CloudWatch already, and is then sent
// twice.
func (e *Exporter) Flush(ctx context.Context) error {
	e.mu.Lock()
	e.drainLocked(len(e.queue))
	aggs, start := e.swapLocked()
	e.mu.Unlock()

	var errs []error
	bs := batches(aggs, e.opts.Namespace)
	for i, b := range bs {
		err := e.send(ctx, b, start)
		if err == nil {
			continue
		}
		errs = append(errs, fmt.Errorf("putting %d metric datums: %w", len(b), err))
		if errors.Is(ctx.Err(), context.Canceled) {
			for _, rest := range bs[i:] {
				e.requeue(rest)
			}
			break
		}
		e.drop(observations(b))
	}
	return errors.Join(errs...)
}

// drainLocked aggregates up to n queued observations without waiting.
func (e *Exporter) drainLocked(n int) {
	for ; n > 0; n-- {
		select {
		case o := <-e.queue:
			e.addLocked(o)
		default:
			return
		}
	}
}

// addLocked aggregates one observation into the current window.
func (e *Exporter) addLocked(o observation) {
	sortDims(o.dims)
	e.keyBuf = appendKey(e.keyBuf[:0], o.name, o.unit, o.dims)
	a, ok := e.window[string(e.keyBuf)]
	if !ok {
		a = newAggregate(string(e.keyBuf), o.name, o.unit, o.dims)
		e.window[a.key] = a
	}
	a.observe(o.value, 1)
}

// swapLocked closes the current window and opens a new one. It returns
// the closed window's aggregates, sorted by key, and its start.
func (e *Exporter) swapLocked() ([]*aggregate, time.Time) {
	old, start := e.window, e.start
	e.window = make(map[string]*aggregate, len(old))
	e.start = e.opts.Now()
	return sortedAggregates(old), start
}

// requeue merges aggregates that could not be sent into the current
// window.
func (e *Exporter) requeue(aggs []*aggregate) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range aggs {
		if cur, ok := e.window[a.key]; ok {
			cur.merge(a)
		} else {
			e.window[a.key] = a
		}
	}
}

// send puts one batch, retrying as allowed.
func (e *Exporter) send(ctx context.Context, b []*aggregate, ts time.Time) error {
	in := &cloudwatch.PutMetricDataInput{
		Namespace:  &e.opts.Namespace,
		MetricData: make([]types.MetricDatum, len(b)),
	}
	for i, a := range b {
		in.MetricData[i] = a.datum(ts)
	}
	for attempt := 0; ; attempt++ {
		_, err := e.api.PutMetricData(ctx, in)
		if err == nil {
			return nil
		}
		if e.opts.OnError != nil {
			e.opts.OnError(err)
		}
		if attempt >= e.opts.MaxRetries || !retryable(err) || ctx.Err() != nil {
			return err
		}
		wait := e.backoff(attempt)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return err // the next attempt would start after the deadline
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// backoff returns the wait before retry number attempt+1: exponential
// from Interval/20 (at most 1s), capped at Interval/4, the upper half
// of it random.
func (e *Exporter) backoff(attempt int) time.Duration {
	base := min(e.opts.Interval/20, time.Second)
	d := max(base<<min(attempt, 16), time.Millisecond)
	d = min(d, e.opts.Interval/4)
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryable reports whether a failed request may succeed when sent
// again. Errors the service blames on the request, other than
// throttling, will not.
func retryable(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultClient {
		_, throttled := retry.DefaultThrottleErrorCodes[ae.ErrorCode()]
		return throttled
	}
	return true
}
