package cwexport

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

// flush calls Flush as Run does, bounded by the interval.
func flush(t *testing.T, e *Exporter) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.Interval)
	defer cancel()
	return e.Flush(ctx)
}

// metricID names a wire datum by name, unit and dimensions.
func metricID(d wireDatum) string {
	var b strings.Builder
	b.WriteString(d.MetricName + "|" + d.Unit)
	for _, dim := range d.Dimensions {
		b.WriteString("|" + dim.Name + "=" + dim.Value)
	}
	return b.String()
}

func byMetric(t *testing.T, ds []wireDatum) map[string]wireDatum {
	t.Helper()
	m := map[string]wireDatum{}
	for _, d := range ds {
		id := metricID(d)
		if _, dup := m[id]; dup {
			t.Errorf("metric %s sent twice in one flush", id)
		}
		m[id] = d
	}
	return m
}

// counter is an OnDrop or OnError sink.
type counter struct{ n atomic.Int64 }

func (c *counter) add(n int)      { c.n.Add(int64(n)) }
func (c *counter) inc(error)      { c.n.Add(1) }
func (c *counter) get() int64     { return c.n.Load() }
func (c *counter) String() string { return fmt.Sprint(c.get()) }

func TestPutMetricDataOnTheWire(t *testing.T) {
	t.Parallel()
	srv := newFakeCloudWatch(t, nil)
	e := New(newClient(srv), Options{Now: fixedNow})

	ms := types.StandardUnitMilliseconds
	e.Observe(MetricUploadDuration, ms, 250, Dim(DimRole, "uploader"), Dim(DimResult, "ok"))
	e.Observe(MetricUploadDuration, ms, 100, Dim(DimResult, "ok"), Dim(DimRole, "uploader")) // same metric
	e.Observe(MetricUploadDuration, ms, 100, Dim(DimRole, "uploader"), Dim(DimResult, "ok"))
	e.Observe(MetricUploadDuration, ms, 80, Dim(DimRole, "admin"), Dim(DimResult, "ok"))
	e.Observe(MetricUploadSpeed, types.StandardUnitBytesSecond, 1.5e6, Dim(DimRole, "uploader"))
	e.Observe(MetricFileSize, types.StandardUnitBytes, 5<<40, Dim(DimRole, "uploader"))
	e.Observe(MetricAPIRequestCount, types.StandardUnitCount, 1)
	e.Observe(MetricAPIRequestCount, "", 1) // unit None

	if err := flush(t, e); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	r := reqs[0]

	for _, h := range []struct{ name, want string }{
		{"Content-Type", "application/cbor"},
		{"Accept", "application/cbor"},
		{"Smithy-Protocol", "rpc-v2-cbor"},
		{"X-Amzn-Query-Mode", "true"},
		// cloudwatch.New leaves RequestMinCompressSizeBytes at 0: every
		// body is gzipped.
		{"Content-Encoding", "gzip"},
	} {
		if got := r.Header.Get(h.name); got != h.want {
			t.Errorf("header %s = %q, want %q", h.name, got, h.want)
		}
	}
	if got, want := r.Path, "/service/GraniteServiceVersion20100801/operation/PutMetricData"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
	if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=a/") ||
		!strings.Contains(auth, "/us-east-1/monitoring/aws4_request") {
		t.Errorf("Authorization = %q, want a SigV4 signature for monitoring in us-east-1", auth)
	}
	if r.Input.Namespace != DefaultNamespace {
		t.Errorf("Namespace = %q, want %q", r.Input.Namespace, DefaultNamespace)
	}
	for _, d := range r.Input.MetricData {
		if !d.Timestamp.Equal(t0) {
			t.Errorf("%s: Timestamp = %v, want %v", metricID(d), d.Timestamp, t0)
		}
	}

	got := byMetric(t, r.Input.MetricData)
	want := map[string]wireDatum{
		"UploadDuration|Milliseconds|Result=ok|Role=uploader": {
			MetricName: "UploadDuration", Unit: "Milliseconds",
			Dimensions: []wireDim{{"Result", "ok"}, {"Role", "uploader"}},
			Values:     []float64{100, 250}, Counts: []float64{2, 1},
		},
		"UploadDuration|Milliseconds|Result=ok|Role=admin": {
			MetricName: "UploadDuration", Unit: "Milliseconds",
			Dimensions: []wireDim{{"Result", "ok"}, {"Role", "admin"}},
			Values:     []float64{80}, Counts: []float64{1},
		},
		"UploadSpeed|Bytes/Second|Role=uploader": {
			MetricName: "UploadSpeed", Unit: "Bytes/Second",
			Dimensions: []wireDim{{"Role", "uploader"}},
			Values:     []float64{1.5e6}, Counts: []float64{1},
		},
		"FileSize|Bytes|Role=uploader": {
			MetricName: "FileSize", Unit: "Bytes",
			Dimensions: []wireDim{{"Role", "uploader"}},
			Values:     []float64{5 << 40}, Counts: []float64{1},
		},
		"ApiRequestCount|Count": {
			MetricName: "ApiRequestCount", Unit: "Count",
			Values: []float64{1}, Counts: []float64{1},
		},
		"ApiRequestCount|None": {
			MetricName: "ApiRequestCount", Unit: "None",
			Values: []float64{1}, Counts: []float64{1},
		},
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Errorf("metric %s not sent", id)
			continue
		}
		g.Timestamp = time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("metric %s:\ngot  %+v\nwant %+v", id, g, w)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("unexpected metric %s sent", id)
		}
	}
}

func TestRequestCompression(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		minBytes int64 // RequestMinCompressSizeBytes; 10240 is what config.LoadDefaultConfig sets
		metrics  int
		wantGzip bool
	}{
		{"client default 0 compresses everything", 0, 1, true},
		{"10 KiB threshold, small body", 10240, 1, false},
		{"10 KiB threshold, large body", 10240, 300, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeCloudWatch(t, nil)
			e := New(newClient(srv, func(o *cloudwatch.Options) {
				o.RequestMinCompressSizeBytes = tt.minBytes
			}), Options{})
			for i := range tt.metrics {
				e.Observe(MetricAPIRequestCount, types.StandardUnitCount, 1, Dim(DimRoute, fmt.Sprintf("route-%03d", i)))
			}
			if err := flush(t, e); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if gotGzip := r.ContentEncoding == "gzip"; gotGzip != tt.wantGzip {
				t.Errorf("%d-byte CBOR body: gzipped = %v, want %v", r.CBORBytes, gotGzip, tt.wantGzip)
			}
			if len(r.Input.MetricData) != tt.metrics {
				t.Errorf("got %d datums, want %d", len(r.Input.MetricData), tt.metrics)
			}
		})
	}
}

func TestValuesOrStatisticSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		distinct  int // values 1..distinct
		repeat    int // each seen this often
		wantStats bool
	}{
		{"one value", 1, 1, false},
		{"one value many times", 1, 500, false},
		{"150 distinct values", 150, 2, false},
		{"151 distinct values", 151, 1, true},
		{"1000 distinct values", 1000, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeCloudWatch(t, nil)
			e := New(newClient(srv), Options{QueueSize: tt.distinct * tt.repeat})
			var sum float64
			for r := 0; r < tt.repeat; r++ {
				for v := 1; v <= tt.distinct; v++ {
					e.Observe(MetricUploadDuration, types.StandardUnitMilliseconds, float64(v), Dim(DimRole, "uploader"))
					sum += float64(v)
				}
			}
			if err := flush(t, e); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			ds := srv.datums()
			if len(ds) != 1 {
				t.Fatalf("got %d datums, want 1", len(ds))
			}
			d := ds[0]
			n := float64(tt.distinct * tt.repeat)
			if tt.wantStats {
				want := &wireStatSet{SampleCount: n, Sum: sum, Minimum: 1, Maximum: float64(tt.distinct)}
				if d.Values != nil || d.Counts != nil || !reflect.DeepEqual(d.StatisticValues, want) {
					t.Errorf("got Values %v Counts %v StatisticValues %+v; want only StatisticValues %+v",
						d.Values, d.Counts, d.StatisticValues, want)
				}
				return
			}
			if d.StatisticValues != nil {
				t.Errorf("got StatisticValues %+v, want Values and Counts", d.StatisticValues)
			}
			if len(d.Values) != tt.distinct || len(d.Counts) != tt.distinct {
				t.Fatalf("got %d values and %d counts, want %d of each", len(d.Values), len(d.Counts), tt.distinct)
			}
			for i := range d.Values {
				if d.Values[i] != float64(i+1) || d.Counts[i] != float64(tt.repeat) {
					t.Errorf("entry %d: value %v count %v, want %v and %v", i, d.Values[i], d.Counts[i], i+1, tt.repeat)
				}
			}
		})
	}
}

func TestBatchesOf1000Datums(t *testing.T) {
	t.Parallel()
	srv := newFakeCloudWatch(t, nil)
	e := New(newClient(srv), Options{})
	const n = 2500
	for i := range n {
		e.Observe(MetricAPIRequestDuration, types.StandardUnitMilliseconds, float64(i%7),
			Dim(DimRoute, fmt.Sprintf("route-%04d", i)), Dim(DimResult, "ok"))
	}
	if err := flush(t, e); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	reqs := srv.requests()
	var sizes []int
	for _, r := range reqs {
		sizes = append(sizes, len(r.Input.MetricData))
	}
	if want := []int{1000, 1000, 500}; !slices.Equal(sizes, want) {
		t.Errorf("datums per request = %v, want %v", sizes, want)
	}
	if got := len(byMetric(t, srv.datums())); got != n {
		t.Errorf("got %d distinct metrics, want %d", got, n)
	}
}

// TestBatchesUnder1MB sends 1000 metrics of 150 distinct values each,
// about 3 MB of CBOR: the 1000-datum limit alone would make one request.
func TestBatchesUnder1MB(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("sends about 3 MB")
	}
	srv := newFakeCloudWatch(t, nil)
	const metrics, values = 1000, maxDistinctValues
	e := New(newClient(srv), Options{QueueSize: metrics * values})
	for m := range metrics {
		dims := []types.Dimension{
			Dim(DimRoute, fmt.Sprintf("route-%04d", m)),
			Dim(DimRole, strings.Repeat("r", 200)),
			Dim(DimResult, "ok"),
		}
		for v := range values {
			e.Observe(MetricUploadSpeed, types.StandardUnitBytesSecond, 1e6+float64(v)*1.000001, dims...)
		}
	}
	// The estimate of each batch, to compare with what was sent.
	e.mu.Lock()
	e.drainLocked(len(e.queue))
	var estimates []int
	for _, b := range batches(sortedAggregates(e.window), e.opts.Namespace) {
		est := requestOverhead + 3*len(e.opts.Namespace)
		for _, a := range b {
			est += a.size()
		}
		estimates = append(estimates, est)
	}
	e.mu.Unlock()

	if err := flush(t, e); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	reqs := srv.requests()
	if len(reqs) != len(estimates) {
		t.Fatalf("got %d requests, want %d", len(reqs), len(estimates))
	}
	total, datums := 0, 0
	for i, r := range reqs {
		total += r.CBORBytes
		datums += len(r.Input.MetricData)
		if r.CBORBytes > maxRequestBytes {
			t.Errorf("request %d: %d bytes of CBOR, over the 1 MB limit", i, r.CBORBytes)
		}
		if estimates[i] < r.CBORBytes {
			t.Errorf("request %d: estimated %d bytes, sent %d: the estimate must not be below", i, estimates[i], r.CBORBytes)
		}
		if estimates[i] > requestBudget {
			t.Errorf("request %d: estimated %d bytes, over the budget %d", i, estimates[i], requestBudget)
		}
	}
	if datums != metrics {
		t.Errorf("sent %d datums, want %d", datums, metrics)
	}
	if total <= maxRequestBytes {
		t.Errorf("sent %d bytes in all: the test should need more than one request by size", total)
	}
	t.Logf("%d requests, %d bytes of CBOR in all", len(reqs), total)
}

func TestRetryWithBackoff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeCloudWatch(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if n < 2 {
				writeError(w, http.StatusInternalServerError, "InternalServiceFault", "InternalServiceError;Receiver")
				return
			}
			writeOK(w)
		})
		var drops, errs counter
		e := New(newClient(srv, noSDKRetries), Options{
			Interval: time.Second, // backoff base 50ms: waits of 25-50ms, then 50-100ms
			OnDrop:   drops.add, OnError: errs.inc,
		})
		e.Observe(MetricUploadCount, types.StandardUnitCount, 1, Dim(DimRole, "uploader"), Dim(DimResult, "ok"))
		if err := flush(t, e); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		reqs := srv.requests()
		if len(reqs) != 3 {
			t.Fatalf("got %d attempts, want 3", len(reqs))
		}
		for i, minGap := range []time.Duration{25 * time.Millisecond, 50 * time.Millisecond} {
			if gap := reqs[i+1].At.Sub(reqs[i].At); gap < minGap {
				t.Errorf("wait before retry %d = %v, want at least %v", i+1, gap, minGap)
			}
		}
		for i, r := range reqs {
			if !reflect.DeepEqual(r.Input, reqs[0].Input) {
				t.Errorf("attempt %d sent %+v, want the same as attempt 0: %+v", i, r.Input, reqs[0].Input)
			}
		}
		if errs.get() != 2 || drops.get() != 0 || e.Dropped() != 0 {
			t.Errorf("OnError calls = %v, dropped = %v (Dropped() %d); want 2 and 0", &errs, &drops, e.Dropped())
		}
	})
}

func TestFailedRequests(t *testing.T) {
	t.Parallel()
	internal := func(w http.ResponseWriter) {
		writeError(w, http.StatusInternalServerError, "InternalServiceFault", "InternalServiceError;Receiver")
	}
	tests := []struct {
		name         string
		respond      func(w http.ResponseWriter, n int)
		wantAttempts int
		wantErr      any // pointer to the error type Flush's error must match, or nil
	}{
		{
			name:         "500 every time: give up after MaxRetries",
			respond:      func(w http.ResponseWriter, n int) { internal(w) },
			wantAttempts: 3,
			wantErr:      new(*types.InternalServiceFault),
		},
		{
			name: "500 without a body, then ok",
			respond: func(w http.ResponseWriter, n int) {
				if n == 0 {
					w.WriteHeader(http.StatusInternalServerError)
					return
				}
				writeOK(w)
			},
			wantAttempts: 2,
		},
		{
			name: "throttled, then ok",
			respond: func(w http.ResponseWriter, n int) {
				if n == 0 {
					writeError(w, http.StatusBadRequest, "Throttling", "Throttling;Sender")
					return
				}
				writeOK(w)
			},
			wantAttempts: 2,
		},
		{
			name: "invalid parameter: not retried",
			respond: func(w http.ResponseWriter, n int) {
				writeError(w, http.StatusBadRequest, "InvalidParameterValueException", "InvalidParameterValue;Sender")
			},
			wantAttempts: 1,
			wantErr:      new(*types.InvalidParameterValueException),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeCloudWatch(t, func(w http.ResponseWriter, r *http.Request, n int) { tt.respond(w, n) })
			var drops, errs counter
			e := New(newClient(srv, noSDKRetries), Options{
				Interval: 400 * time.Millisecond, MaxRetries: 2,
				OnDrop: drops.add, OnError: errs.inc,
			})
			const n = 5
			for range n {
				e.Observe(MetricUploadCount, types.StandardUnitCount, 1)
			}
			err := flush(t, e)

			if got := len(srv.requests()); got != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", got, tt.wantAttempts)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Errorf("Flush = %v, want nil", err)
				}
				if errs.get() != int64(tt.wantAttempts-1) || drops.get() != 0 {
					t.Errorf("OnError calls = %v, dropped = %v; want %d and 0", &errs, &drops, tt.wantAttempts-1)
				}
				return
			}
			if !errors.As(err, tt.wantErr) {
				t.Errorf("Flush = %v, want an error matching %T", err, tt.wantErr)
			}
			var ae smithy.APIError
			if !errors.As(err, &ae) {
				t.Errorf("Flush = %v, want a smithy.APIError inside", err)
			}
			if drops.get() != n || e.Dropped() != n {
				t.Errorf("dropped = %v (Dropped() %d), want %d", &drops, e.Dropped(), n)
			}
			if errs.get() != int64(tt.wantAttempts) {
				t.Errorf("OnError calls = %v, want %d", &errs, tt.wantAttempts)
			}
		})
	}
}

func TestClosedEndpointDrops(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeCloudWatch(t, nil)
		srv.Close()
		var drops, errs counter
		e := New(newClient(srv, noSDKRetries), Options{
			Interval: 200 * time.Millisecond, MaxRetries: 1, OnDrop: drops.add, OnError: errs.inc,
		})
		for range 4 {
			e.Observe(MetricAuthFailureCount, types.StandardUnitCount, 1, Dim(DimReason, "expired"))
		}
		e.Observe(MetricAccessDeniedCount, types.StandardUnitCount, 1, Dim(DimRole, "viewer"))
		if err := flush(t, e); err == nil {
			t.Fatal("Flush to a closed endpoint = nil, want an error")
		}
		if drops.get() != 5 || e.Dropped() != 5 {
			t.Errorf("dropped = %v (Dropped() %d), want 5", &drops, e.Dropped())
		}
		if errs.get() != 2 {
			t.Errorf("OnError calls = %v, want 2 (one try, one retry)", &errs)
		}
	})
}

// TestSlowEndpointFillsQueue: while a flush waits for the endpoint, Run
// takes nothing off the queue, so it fills and Observe drops.
func TestSlowEndpointFillsQueue(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		srv := newFakeCloudWatch(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 0 {
				<-release
			}
			writeOK(w)
		})
		var drops counter
		e := New(newClient(srv, noSDKRetries), Options{
			Interval: time.Second, QueueSize: 10, OnDrop: drops.add,
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() { e.Run(ctx); close(done) }()

		e.Observe(MetricUploadCount, types.StandardUnitCount, 1)
		select {
		case <-srv.arrived: // the first flush is now waiting for the endpoint
		case <-time.After(5 * time.Second):
			t.Fatal("no flush within 5s")
		}
		for range 50 {
			e.Observe(MetricUploadCount, types.StandardUnitCount, 1) // never blocks
		}
		if drops.get() != 40 || e.Dropped() != 40 {
			t.Errorf("with a queue of 10: dropped = %v (Dropped() %d), want 40", &drops, e.Dropped())
		}
		close(release)
		// Run takes from the queue again once the first flush is over; only
		// then shut down, or the first request, cancelled while its answer
		// is on the way, would be sent again by the final flush.
		synctest.Wait()
		if n := len(e.queue); n > 0 {
			t.Fatalf("Run did not resume taking observations: %d queued", n)
		}
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10s of cancel")
		}

		reqs := srv.requests()
		if len(reqs) != 2 {
			t.Fatalf("got %d requests, want 2 (periodic and final flush)", len(reqs))
		}
		for i, want := range []float64{1, 10} {
			ds := reqs[i].Input.MetricData
			if len(ds) != 1 || !slices.Equal(ds[0].Counts, []float64{want}) {
				t.Errorf("request %d: datums %+v, want one with Counts [%v]", i, ds, want)
			}
		}
	})
}

func TestRunFlushesOnInterval(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeCloudWatch(t, nil)
		e := New(newClient(srv), Options{Interval: 50 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		e.Observe(MetricUploadCount, types.StandardUnitCount, 1)
		select {
		case <-srv.arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("no flush within 5s with a 50ms interval")
		}
		e.Observe(MetricUploadCount, types.StandardUnitCount, 2)
		select {
		case <-srv.arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("no second flush within 5s")
		}
		ds := srv.datums()
		if len(ds) != 2 || ds[0].Values[0] != 1 || ds[1].Values[0] != 2 {
			t.Errorf("got datums %+v, want value 1 then value 2 in separate flushes", ds)
		}
	})
}

func TestFinalFlushOnShutdown(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeCloudWatch(t, nil)
		e := New(newClient(srv), Options{Interval: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.Run(ctx); close(done) }()

		for i := range 3 {
			e.Observe(MetricMultipartPartCount, types.StandardUnitCount, float64(i+1), Dim(DimRole, "uploader"))
		}
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10s of cancel")
		}
		ds := srv.datums()
		if len(ds) != 1 || !slices.Equal(ds[0].Values, []float64{1, 2, 3}) {
			t.Errorf("final flush sent %+v, want one datum with Values [1 2 3]", ds)
		}
	})
}

func TestNothingToSend(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeCloudWatch(t, nil)
		e := New(newClient(srv), Options{Interval: 10 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		e.Run(ctx)
		if n := len(srv.requests()); n != 0 {
			t.Errorf("got %d requests without observations, want 0", n)
		}
	})
}

// TestShutdownDuringFlush: the requests cancelled by shutdown are sent
// again by the final flush instead of being dropped.
func TestShutdownDuringFlush(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeCloudWatch(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 0 {
				<-r.Context().Done() // hang until the client gives up
				return
			}
			writeOK(w)
		})
		var drops counter
		e := New(newClient(srv, noSDKRetries), Options{Interval: 300 * time.Millisecond, OnDrop: drops.add})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.Run(ctx); close(done) }()

		e.Observe(MetricUploadDuration, types.StandardUnitMilliseconds, 12, Dim(DimRole, "admin"))
		select {
		case <-srv.arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("no flush within 5s")
		}
		e.Observe(MetricUploadDuration, types.StandardUnitMilliseconds, 12, Dim(DimRole, "admin"))
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10s of cancel")
		}
		reqs := srv.requests()
		if len(reqs) != 2 {
			t.Fatalf("got %d requests, want 2", len(reqs))
		}
		ds := reqs[1].Input.MetricData
		if len(ds) != 1 || !slices.Equal(ds[0].Counts, []float64{2}) {
			t.Errorf("final flush sent %+v, want both observations: Values [12] Counts [2]", ds)
		}
		if drops.get() != 0 {
			t.Errorf("dropped %v, want 0", &drops)
		}
	})
}

func TestObserveDropsInvalid(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 256)
	dims := func(n int) []types.Dimension {
		var ds []types.Dimension
		for i := range n {
			ds = append(ds, Dim(fmt.Sprintf("D%02d", i), "v"))
		}
		return ds
	}
	name := "Name"
	tests := []struct {
		name  string
		mname string
		value float64
		dims  []types.Dimension
		valid bool
	}{
		{"plain", "M", 1, nil, true},
		{"zero", "M", 0, nil, true},
		{"negative", "M", -3.5, nil, true},
		{"30 dimensions", "M", 1, dims(30), true},
		{"largest value", "M", 1.174271e+108, nil, true},
		{"smallest value", "M", -8.515920e-109, nil, true},
		{"empty name", "", 1, nil, false},
		{"name too long", long, 1, nil, false},
		{"NaN", "M", math.NaN(), nil, false},
		{"+Inf", "M", math.Inf(1), nil, false},
		{"-Inf", "M", math.Inf(-1), nil, false},
		{"too large", "M", 1e109, nil, false},
		{"too small", "M", 1e-109, nil, false},
		{"31 dimensions", "M", 1, dims(31), false},
		{"empty dimension value", "M", 1, []types.Dimension{Dim("Role", "")}, false},
		{"empty dimension name", "M", 1, []types.Dimension{Dim("", "v")}, false},
		{"dimension name starting with colon", "M", 1, []types.Dimension{Dim(":x", "v")}, false},
		{"dimension value too long", "M", 1, []types.Dimension{Dim("Role", strings.Repeat("v", 1025))}, false},
		{"nil dimension value", "M", 1, []types.Dimension{{Name: &name}}, false},
		{"nil dimension name", "M", 1, []types.Dimension{{Value: &name}}, false},
		{"same dimension twice", "M", 1, []types.Dimension{Dim("Role", "a"), Dim("Role", "b")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var drops counter
			e := New(noopAPI{}, Options{OnDrop: drops.add})
			e.Observe(tt.mname, types.StandardUnitCount, tt.value, tt.dims...)
			wantDropped := int64(1)
			if tt.valid {
				wantDropped = 0
			}
			if e.Dropped() != wantDropped || drops.get() != wantDropped {
				t.Errorf("Observe(%.20q, %v, %d dims): Dropped() = %d, OnDrop total %v; want %d",
					tt.mname, tt.value, len(tt.dims), e.Dropped(), &drops, wantDropped)
			}
		})
	}
}

func TestObserveNeverBlocks(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var drops counter
		e := New(noopAPI{}, Options{QueueSize: 3, OnDrop: drops.add})
		done := make(chan struct{})
		go func() {
			for range 5 {
				e.Observe(MetricUploadCount, types.StandardUnitCount, 1)
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Observe blocked on a full queue")
		}
		if drops.get() != 2 || e.Dropped() != 2 {
			t.Errorf("dropped = %v (Dropped() %d), want 2", &drops, e.Dropped())
		}
	})
}

func TestObserveCopiesDimensions(t *testing.T) {
	t.Parallel()
	srv := newFakeCloudWatch(t, nil)
	e := New(newClient(srv), Options{})
	dims := []types.Dimension{Dim(DimRole, "uploader")}
	e.Observe(MetricUploadCount, types.StandardUnitCount, 1, dims...)
	dims[0] = Dim(DimRole, "changed")
	if err := flush(t, e); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	ds := srv.datums()
	if len(ds) != 1 || ds[0].Dimensions[0].Value != "uploader" {
		t.Errorf("sent %+v, want Role=uploader", ds)
	}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   Options
		want Options
	}{
		{"zero", Options{}, Options{Namespace: "UploadGateway", Interval: time.Minute, QueueSize: 10000, MaxRetries: 3}},
		{"set", Options{Namespace: "X", Interval: time.Second, QueueSize: 5, MaxRetries: 1},
			Options{Namespace: "X", Interval: time.Second, QueueSize: 5, MaxRetries: 1}},
		{"negative retries disable them", Options{MaxRetries: -1},
			Options{Namespace: "UploadGateway", Interval: time.Minute, QueueSize: 10000, MaxRetries: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := New(noopAPI{}, tt.in).opts
			if got.Now == nil {
				t.Error("Now not defaulted")
			}
			got.Now = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBackoffBoundedByInterval(t *testing.T) {
	t.Parallel()
	tests := []struct {
		interval time.Duration
		attempt  int
		min, max time.Duration
	}{
		{time.Minute, 0, 500 * time.Millisecond, time.Second},
		{time.Minute, 1, time.Second, 2 * time.Second},
		{time.Minute, 2, 2 * time.Second, 4 * time.Second},
		{time.Minute, 10, 7500 * time.Millisecond, 15 * time.Second}, // capped at Interval/4
		{time.Second, 0, 25 * time.Millisecond, 50 * time.Millisecond},
		{time.Second, 30, 125 * time.Millisecond, 250 * time.Millisecond},
		{10 * time.Millisecond, 0, 0, 2500 * time.Microsecond},
	}
	for _, tt := range tests {
		e := New(noopAPI{}, Options{Interval: tt.interval})
		for range 100 {
			if d := e.backoff(tt.attempt); d < tt.min || d > tt.max {
				t.Errorf("interval %v, attempt %d: backoff %v, want within [%v, %v]", tt.interval, tt.attempt, d, tt.min, tt.max)
				break
			}
		}
	}
}

type noopAPI struct{}

func (noopAPI) PutMetricData(context.Context, *cloudwatch.PutMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error) {
	return &cloudwatch.PutMetricDataOutput{}, nil
}

// BenchmarkExporterObserve is the cost on the request path: validating
// and queueing one observation with two dimensions, while Run drains.
func BenchmarkExporterObserve(b *testing.B) {
	e := New(noopAPI{}, Options{QueueSize: 1 << 16})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	role, result := Dim(DimRole, "uploader"), Dim(DimResult, "ok")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.Observe(MetricUploadDuration, types.StandardUnitMilliseconds, float64(i%200), role, result)
	}
	b.StopTimer()
	cancel()
	<-done
	// Observe in a tight loop outpaces Run; a real request path does not.
	b.ReportMetric(float64(e.Dropped())/float64(b.N), "dropped/op")
}
