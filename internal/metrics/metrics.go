package metrics

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// Namespace prefixes every metric name.
const Namespace = "upload_gateway"

// Values of the result label of uploads_total and upload_duration_seconds.
const (
	ResultOK         = "ok"          // stored
	ResultRejected   = "rejected"    // refused before or while reading: too large, bad type, denied
	ResultFailed     = "failed"      // S3 or another backend failed
	ResultAborted    = "aborted"     // the client went away or the request was cancelled
	ResultRolledBack = "rolled_back" // stored, then deleted because the request failed later
)

// Buckets of the histograms. They are fixed so dashboards stay valid
// across versions.
var (
	// requestBuckets span fast API calls up to hour-long uploads.
	requestBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}
	// backendBuckets are for single STS and S3 calls.
	backendBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// speedBuckets go from 16 KiB/s to 4 GiB/s in steps of 4.
	speedBuckets = prometheus.ExponentialBuckets(16<<10, 4, 10)
	// sizeBuckets go from 1 KiB to 4 TiB in steps of 4, then 5 TiB, the
	// largest S3 object.
	sizeBuckets = append(prometheus.ExponentialBuckets(1<<10, 4, 16), float64(s3limits.MaxObjectSize))
	// partBuckets end at the S3 limit of parts per upload.
	partBuckets = []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, s3limits.MaxParts}
)

// Metrics holds the gateway's collectors. Build it with [New]. A nil
// *Metrics is valid and does nothing. All methods are safe for concurrent
// use.
type Metrics struct {
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec

	uploadBytes         *prometheus.CounterVec
	uploadDuration      *prometheus.HistogramVec
	uploadSpeed         prometheus.Histogram
	fileSize            prometheus.Histogram
	multipartParts      prometheus.Histogram
	uploads             *prometheus.CounterVec
	uploadsInFlight     prometheus.Gauge
	uploadBytesInFlight prometheus.Gauge

	authFailures       *prometheus.CounterVec
	accessDenied       *prometheus.CounterVec
	presign            *prometheus.CounterVec
	stsRequests        *prometheus.CounterVec
	stsRequestDuration prometheus.Histogram
	s3Requests         *prometheus.CounterVec
	s3RequestDuration  *prometheus.HistogramVec
	abortedUploads     *prometheus.CounterVec
	rolledBackObjects  prometheus.Counter

	cloudWatchDropped   prometheus.Counter
	cloudWatchPutErrors prometheus.Counter

	orphanUploads  *prometheus.GaugeVec
	orphanBytes    *prometheus.GaugeVec
	orphansAborted *prometheus.CounterVec
}

// New builds the collectors and registers them with reg. If reg already
// holds an identical collector, which is the case when Caddy reloads its
// config, New uses the registered one instead, so both instances update
// the same series. Any other registration error is returned and nothing
// is usable. A nil reg gives working collectors that are registered
// nowhere.
func New(reg prometheus.Registerer) (*Metrics, error) {
	r := registrar{reg: reg}
	m := &Metrics{
		requests: r.counterVec("requests_total",
			"HTTP requests answered by the upload gateway.", "route", "endpoint", "status"),
		requestDuration: r.histogramVec("request_duration_seconds",
			"Time to answer an HTTP request, uploads included.", requestBuckets, "route", "endpoint", "status"),

		uploadBytes: r.counterVec("upload_bytes_total",
			"Bytes of upload bodies received, whatever the result.", "role"),
		uploadDuration: r.histogramVec("upload_duration_seconds",
			"Time from the start of an upload to its result.", requestBuckets, "role", "result"),
		uploadSpeed: r.histogram("upload_speed_bytes_per_second",
			"Average speed of successful uploads.", speedBuckets),
		fileSize:       r.histogram("file_size_bytes", "Size of successfully stored objects.", sizeBuckets),
		multipartParts: r.histogram("multipart_parts", "Parts per multipart upload.", partBuckets),
		uploads: r.counterVec("uploads_total",
			"Finished uploads by role and result (ok, rejected, failed, aborted, rolled_back).", "role", "result"),
		uploadsInFlight:     r.gauge("uploads_in_flight", "Uploads in progress."),
		uploadBytesInFlight: r.gauge("upload_bytes_in_flight", "Announced size of the uploads in progress."),

		authFailures: r.counterVec("auth_failures_total",
			"Requests rejected because their credentials were missing or invalid.", "reason"),
		accessDenied:       r.counterVec("access_denied_total", "Authenticated requests denied by policy.", "action"),
		presign:            r.counterVec("presign_total", "Presigned URLs issued.", "kind"),
		stsRequests:        r.counterVec("sts_requests_total", "Calls to STS.", "result"),
		stsRequestDuration: r.histogram("sts_request_duration_seconds", "Latency of calls to STS.", backendBuckets),
		s3Requests:         r.counterVec("s3_requests_total", "Calls to the S3 API.", "operation", "result"),
		s3RequestDuration: r.histogramVec("s3_request_duration_seconds",
			"Latency of calls to the S3 API.", backendBuckets, "operation"),
		abortedUploads: r.counterVec("aborted_uploads_total", "Multipart uploads aborted.", "reason"),
		rolledBackObjects: r.counter("rolled_back_objects_total",
			"Stored objects deleted again because their request failed."),

		cloudWatchDropped: r.counter("cloudwatch_dropped_total",
			"Observations that were not delivered to CloudWatch."),
		cloudWatchPutErrors: r.counter("cloudwatch_put_errors_total", "Failed CloudWatch PutMetricData calls."),
		orphanUploads: r.gaugeVec("orphan_uploads",
			"Multipart uploads older than the janitor's max age found by its last sweep, by prefix.", "prefix"),
		orphanBytes: r.gaugeVec("orphan_bytes",
			"Bytes in the parts of the orphaned multipart uploads of the janitor's last sweep, by prefix.", "prefix"),
		orphansAborted: r.counterVec("orphans_aborted_total",
			"Orphaned multipart uploads the janitor aborted, by prefix.", "prefix"),
	}
	if r.err != nil {
		r.undo()
		return nil, r.err
	}
	return m, nil
}

// registrar registers collectors one after the other and keeps the first
// error.
type registrar struct {
	reg   prometheus.Registerer
	err   error
	added []prometheus.Collector // registered by this call, not reused
}

// undo unregisters what this call registered, so a failed New leaves the
// registry as it found it.
func (r *registrar) undo() {
	for _, c := range r.added {
		r.reg.Unregister(c)
	}
}

// The constructors of the gateway's collectors, in Namespace.

func (r *registrar) counter(name, help string) prometheus.Counter {
	return register(r, prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}))
}

func (r *registrar) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels))
}

func (r *registrar) gauge(name, help string) prometheus.Gauge {
	return register(r, prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}))
}

func (r *registrar) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return register(r, prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, labels))
}

func (r *registrar) histogram(name, help string, buckets []float64) prometheus.Histogram {
	return register(r, prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}))
}

func (r *registrar) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return register(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels))
}

// register registers c and returns it, or returns the identical collector
// that is already registered.
func register[C prometheus.Collector](r *registrar, c C) C {
	if r.reg == nil || r.err != nil {
		return c
	}
	err := r.reg.Register(c)
	if err == nil {
		r.added = append(r.added, c)
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
		err = fmt.Errorf("collector already registered with type %T, want %T", are.ExistingCollector, c)
	}
	r.err = fmt.Errorf("registering metrics: %w", err)
	return c
}

// ObserveRequest records one answered HTTP request. route is the
// configured route name, endpoint the gateway operation ("upload",
// "presign", ...), both from a fixed set.
func (m *Metrics) ObserveRequest(route, endpoint string, status int, d time.Duration) {
	if m == nil {
		return
	}
	s := statusLabel(status)
	m.requests.WithLabelValues(route, endpoint, s).Inc()
	m.requestDuration.WithLabelValues(route, endpoint, s).Observe(d.Seconds())
}

// UploadStarted records the start of an upload whose size is announced
// as bytesHint (0 or less when unknown) and returns the func to call
// once, with the outcome, when it is over. result is one of the Result
// constants; bytes is what was received; parts is the number of
// multipart parts, 0 for a single PUT. Calls after the first are
// ignored.
//
//	done := m.UploadStarted(r.ContentLength)
//	res, err := uploader.Upload(...)
//	done(role, metrics.ResultOK, res.Bytes, res.Parts)
func (m *Metrics) UploadStarted(bytesHint int64) func(role, result string, bytes int64, parts int) {
	if m == nil {
		return noopDone
	}
	hint := float64(max(bytesHint, 0))
	m.uploadsInFlight.Inc()
	m.uploadBytesInFlight.Add(hint)
	start := time.Now()
	var finished atomic.Bool
	return func(role, result string, bytes int64, parts int) {
		if finished.Swap(true) {
			return
		}
		m.uploadsInFlight.Dec()
		m.uploadBytesInFlight.Sub(hint)
		m.UploadFinished(role, result, bytes, parts, time.Since(start))
	}
}

// UploadFinished records an upload that did not pass through the gateway,
// whose result it learnt at once: one whose bytes went straight to S3
// with presigned URLs, reported when the client confirms or completes it.
// It counts in the same series as [Metrics.UploadStarted]'s uploads; d is
// the upload's duration, 0 when unknown (then neither the duration nor
// the speed is observed).
func (m *Metrics) UploadFinished(role, result string, bytes int64, parts int, d time.Duration) {
	if m == nil {
		return
	}
	m.uploads.WithLabelValues(role, result).Inc()
	if d > 0 {
		m.uploadDuration.WithLabelValues(role, result).Observe(d.Seconds())
	}
	if bytes > 0 {
		m.uploadBytes.WithLabelValues(role).Add(float64(bytes))
	}
	if parts > 0 {
		m.multipartParts.Observe(float64(parts))
	}
	if result != ResultOK {
		return
	}
	m.fileSize.Observe(float64(bytes))
	if d > 0 && bytes > 0 {
		m.uploadSpeed.Observe(float64(bytes) / d.Seconds())
	}
}

func noopDone(string, string, int64, int) {}

// AuthFailure counts a request rejected for its credentials, by a reason
// from a fixed set such as "missing", "invalid", "expired".
func (m *Metrics) AuthFailure(reason string) {
	if m == nil {
		return
	}
	m.authFailures.WithLabelValues(reason).Inc()
}

// AccessDenied counts an authenticated request denied by policy, by the
// action it attempted ("upload", "download", "delete", ...).
func (m *Metrics) AccessDenied(action string) {
	if m == nil {
		return
	}
	m.accessDenied.WithLabelValues(action).Inc()
}

// Presign counts an issued presigned URL of the given kind ("put",
// "get", ...).
func (m *Metrics) Presign(kind string) {
	if m == nil {
		return
	}
	m.presign.WithLabelValues(kind).Inc()
}

// STSRequest records one call to STS and its result ("ok", "error").
func (m *Metrics) STSRequest(result string, d time.Duration) {
	if m == nil {
		return
	}
	m.stsRequests.WithLabelValues(result).Inc()
	m.stsRequestDuration.Observe(d.Seconds())
}

// S3Request records one S3 API call: op is the operation name
// ("PutObject", "UploadPart", ...), result "ok" or an error class.
func (m *Metrics) S3Request(op, result string, d time.Duration) {
	if m == nil {
		return
	}
	m.s3Requests.WithLabelValues(op, result).Inc()
	m.s3RequestDuration.WithLabelValues(op).Observe(d.Seconds())
}

// Aborted counts a multipart upload aborted for reason ("client_gone",
// "too_large", "s3_error", ...).
func (m *Metrics) Aborted(reason string) {
	if m == nil {
		return
	}
	m.abortedUploads.WithLabelValues(reason).Inc()
}

// RolledBack counts n stored objects deleted again.
func (m *Metrics) RolledBack(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.rolledBackObjects.Add(float64(n))
}

// JanitorSwept records a sweep of the orphan janitor over prefix: the
// orphans it found, their bytes, and how many it aborted.
func (m *Metrics) JanitorSwept(prefix string, found int, bytes int64, aborted int) {
	if m == nil {
		return
	}
	m.orphanUploads.WithLabelValues(prefix).Set(float64(found))
	m.orphanBytes.WithLabelValues(prefix).Set(float64(bytes))
	if aborted > 0 {
		m.orphansAborted.WithLabelValues(prefix).Add(float64(aborted))
	}
}

// CloudWatchDropped counts n observations that did not reach CloudWatch.
// It fits the OnDrop option of the CloudWatch exporter.
func (m *Metrics) CloudWatchDropped(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.cloudWatchDropped.Add(float64(n))
}

// CloudWatchPutError counts a failed PutMetricData call. It fits the
// OnError option of the CloudWatch exporter.
func (m *Metrics) CloudWatchPutError(error) {
	if m == nil {
		return
	}
	m.cloudWatchPutErrors.Inc()
}

// statusLabels holds the label value of every status code from 100 to
// 599, so the hot path does not format numbers.
var statusLabels = func() (s [600]string) {
	for i := 100; i < len(s); i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

// statusLabel returns the label of an HTTP status code. Codes outside
// 100..599 are "other", which keeps the label bounded.
func statusLabel(code int) string {
	if code < 100 || code >= len(statusLabels) {
		return "other"
	}
	return statusLabels[code]
}
