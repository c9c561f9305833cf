package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newMetrics(t testing.TB) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m, reg
}

func TestNewRegistersEverySeries(t *testing.T) {
	t.Parallel()
	m, reg := newMetrics(t)
	// Touch the vectors so they export a series.
	m.ObserveRequest("r", "upload", 200, time.Millisecond)
	m.UploadStarted(10)("uploader", ResultOK, 10, 2)
	m.AuthFailure("invalid")
	m.AccessDenied("upload")
	m.Presign("put")
	m.STSRequest("ok", time.Millisecond)
	m.S3Request("PutObject", "ok", time.Millisecond)
	m.Aborted("client_gone")
	m.RolledBack(1)
	m.CloudWatchDropped(1)
	m.CloudWatchPutError(errors.New("boom"))

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range []string{
		"requests_total", "request_duration_seconds",
		"upload_bytes_total", "upload_duration_seconds", "upload_speed_bytes_per_second",
		"file_size_bytes", "multipart_parts", "uploads_total", "uploads_in_flight",
		"upload_bytes_in_flight", "auth_failures_total", "access_denied_total",
		"presign_total", "sts_requests_total", "sts_request_duration_seconds",
		"s3_requests_total", "s3_request_duration_seconds", "aborted_uploads_total",
		"rolled_back_objects_total", "cloudwatch_dropped_total", "cloudwatch_put_errors_total",
	} {
		if !got[Namespace+"_"+name] {
			t.Errorf("series %s_%s not gathered", Namespace, name)
		}
	}
	if len(mfs) != 21 {
		t.Errorf("gathered %d metric families, want 21", len(mfs))
	}
}

// TestNewTwiceSharesSeries is what happens on a Caddy config reload: the
// new instance registers while the old one still serves.
func TestNewTwiceSharesSeries(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	old, err := New(reg)
	if err != nil {
		t.Fatalf("first New: %v", err)
	}
	reloaded, err := New(reg)
	if err != nil {
		t.Fatalf("second New on the same registry: %v", err)
	}

	old.AuthFailure("expired")
	reloaded.AuthFailure("expired")
	old.ObserveRequest("site", "upload", 201, time.Second)
	reloaded.ObserveRequest("site", "upload", 201, time.Second)
	reloaded.RolledBack(3)

	want := `
# HELP upload_gateway_auth_failures_total Requests rejected because their credentials were missing or invalid.
# TYPE upload_gateway_auth_failures_total counter
upload_gateway_auth_failures_total{reason="expired"} 2
# HELP upload_gateway_requests_total HTTP requests answered by the upload gateway.
# TYPE upload_gateway_requests_total counter
upload_gateway_requests_total{endpoint="upload",route="site",status="201"} 2
# HELP upload_gateway_rolled_back_objects_total Stored objects deleted again because their request failed.
# TYPE upload_gateway_rolled_back_objects_total counter
upload_gateway_rolled_back_objects_total 3
`
	gatherAndCompare(t, reg, want,
		"upload_gateway_auth_failures_total",
		"upload_gateway_requests_total",
		"upload_gateway_rolled_back_objects_total",
	)
	if got := toFloat64(t, old.rolledBackObjects); got != 3 {
		t.Errorf("old instance reads rolled_back_objects_total = %v, want 3 (shared collector)", got)
	}
}

func TestNewConflictingCollector(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	// Same name, different labels: not the same collector, cannot be reused.
	clash := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "presign_total", Help: "something else",
	}, []string{"bucket"})
	reg.MustRegister(clash)
	// Same name and shape as ours but a different Go type.
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "presign_total", Help: "Presigned URLs issued.",
	}, []string{"kind"}))

	for name, r := range map[string]*prometheus.Registry{"different labels": reg, "different type": reg2} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			before := gatherAndCount(t, r)
			m, err := New(r)
			if err == nil {
				t.Fatalf("New = %v, nil; want an error", m)
			}
			if m != nil {
				t.Errorf("New returned %v with an error, want nil", m)
			}
			// Everything registered before the clash must be gone again.
			if err := r.Register(prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: Namespace, Name: "requests_total",
				Help: "HTTP requests answered by the upload gateway.",
			}, []string{"route", "endpoint", "status"})); err != nil {
				t.Errorf("requests_total still registered after a failed New: %v", err)
			}
			if after := gatherAndCount(t, r); before != after {
				t.Errorf("series before New = %d, after = %d", before, after)
			}
		})
	}
}

func TestNewNilRegisterer(t *testing.T) {
	t.Parallel()
	m, err := New(nil)
	if err != nil {
		t.Fatalf("New(nil): %v", err)
	}
	m.Presign("put")
	if got := toFloat64(t, m.presign.WithLabelValues("put")); got != 1 {
		t.Errorf("presign_total{kind=put} = %v, want 1", got)
	}
}

func TestNilMetricsIsNoop(t *testing.T) {
	t.Parallel()
	var m *Metrics
	calls := []struct {
		name string
		call func()
	}{
		{"ObserveRequest", func() { m.ObserveRequest("r", "e", 200, time.Second) }},
		{"UploadStarted", func() { m.UploadStarted(1)("role", ResultOK, 1, 1) }},
		{"AuthFailure", func() { m.AuthFailure("x") }},
		{"AccessDenied", func() { m.AccessDenied("x") }},
		{"Presign", func() { m.Presign("x") }},
		{"STSRequest", func() { m.STSRequest("ok", time.Second) }},
		{"S3Request", func() { m.S3Request("PutObject", "ok", time.Second) }},
		{"Aborted", func() { m.Aborted("x") }},
		{"RolledBack", func() { m.RolledBack(1) }},
		{"CloudWatchDropped", func() { m.CloudWatchDropped(1) }},
		{"CloudWatchPutError", func() { m.CloudWatchPutError(nil) }},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s on a nil *Metrics panicked: %v", tt.name, r)
				}
			}()
			tt.call()
		})
	}
}

func TestObserveRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		label  string
	}{
		{200, "200"},
		{201, "201"},
		{413, "413"},
		{499, "499"},
		{599, "599"},
		{0, "other"},
		{99, "other"},
		{600, "other"},
		{-1, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			t.Parallel()
			m, _ := newMetrics(t)
			m.ObserveRequest("site", "upload", tt.status, 300*time.Millisecond)
			if got := toFloat64(t, m.requests.WithLabelValues("site", "upload", tt.label)); got != 1 {
				t.Errorf("status %d: requests_total{status=%q} = %v, want 1", tt.status, tt.label, got)
			}
			h := histogram(t, m.requestDuration.WithLabelValues("site", "upload", tt.label).(prometheus.Metric))
			if h.GetSampleCount() != 1 || h.GetSampleSum() != 0.3 {
				t.Errorf("status %d: request_duration_seconds count=%d sum=%v, want 1 and 0.3",
					tt.status, h.GetSampleCount(), h.GetSampleSum())
			}
		})
	}
}

func TestUploadStarted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		hint      int64
		result    string
		bytes     int64
		parts     int
		wantSize  uint64 // observations of file_size_bytes
		wantSpeed uint64
		wantParts uint64
		wantBytes float64
	}{
		{"single put ok", 2048, ResultOK, 2048, 0, 1, 1, 0, 2048},
		{"multipart ok", 12 << 20, ResultOK, 12 << 20, 3, 1, 1, 1, 12 << 20},
		{"unknown size ok", -1, ResultOK, 5000, 0, 1, 1, 0, 5000},
		{"rejected before reading", 1 << 30, ResultRejected, 0, 0, 0, 0, 0, 0},
		{"failed after two parts", 20 << 20, ResultFailed, 10 << 20, 2, 0, 0, 1, 10 << 20},
		{"client gone", 100, ResultAborted, 50, 0, 0, 0, 0, 50},
		{"rolled back", 100, ResultRolledBack, 100, 0, 0, 0, 0, 100},
		{"empty object ok", 0, ResultOK, 0, 0, 1, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, _ := newMetrics(t)
			done := m.UploadStarted(tt.hint)
			if got := toFloat64(t, m.uploadsInFlight); got != 1 {
				t.Errorf("uploads_in_flight during upload = %v, want 1", got)
			}
			if got, want := toFloat64(t, m.uploadBytesInFlight), float64(max(tt.hint, 0)); got != want {
				t.Errorf("upload_bytes_in_flight during upload = %v, want %v", got, want)
			}
			time.Sleep(time.Millisecond) // a measurable duration, for the speed
			done("uploader", tt.result, tt.bytes, tt.parts)
			done("uploader", tt.result, tt.bytes, tt.parts) // ignored

			if got := toFloat64(t, m.uploadsInFlight); got != 0 {
				t.Errorf("uploads_in_flight after done = %v, want 0", got)
			}
			if got := toFloat64(t, m.uploadBytesInFlight); got != 0 {
				t.Errorf("upload_bytes_in_flight after done = %v, want 0", got)
			}
			if got := toFloat64(t, m.uploads.WithLabelValues("uploader", tt.result)); got != 1 {
				t.Errorf("uploads_total{result=%q} = %v, want 1", tt.result, got)
			}
			if got := toFloat64(t, m.uploadBytes.WithLabelValues("uploader")); got != tt.wantBytes {
				t.Errorf("upload_bytes_total = %v, want %v", got, tt.wantBytes)
			}
			d := histogram(t, m.uploadDuration.WithLabelValues("uploader", tt.result).(prometheus.Metric))
			if d.GetSampleCount() != 1 || d.GetSampleSum() <= 0 {
				t.Errorf("upload_duration_seconds count=%d sum=%v, want 1 and > 0", d.GetSampleCount(), d.GetSampleSum())
			}
			for _, h := range []struct {
				name string
				c    prometheus.Histogram
				want uint64
			}{
				{"file_size_bytes", m.fileSize, tt.wantSize},
				{"upload_speed_bytes_per_second", m.uploadSpeed, tt.wantSpeed},
				{"multipart_parts", m.multipartParts, tt.wantParts},
			} {
				if got := histogram(t, h.c).GetSampleCount(); got != h.want {
					t.Errorf("%s observations = %d, want %d", h.name, got, h.want)
				}
			}
		})
	}
}

func TestFileSizeBuckets(t *testing.T) {
	t.Parallel()
	if got, want := len(sizeBuckets), 17; got != want {
		t.Fatalf("len(sizeBuckets) = %d, want %d", got, want)
	}
	tests := []struct {
		bucket int
		want   float64
	}{
		{0, 1 << 10},
		{5, 1 << 20},
		{10, 1 << 30},
		{15, 1 << 40},
		{16, 5 << 40},
	}
	for _, tt := range tests {
		if got := sizeBuckets[tt.bucket]; got != tt.want {
			t.Errorf("sizeBuckets[%d] = %v, want %v", tt.bucket, got, tt.want)
		}
	}

	m, _ := newMetrics(t)
	m.UploadStarted(0)("r", ResultOK, 5<<40, 10000) // the largest S3 object
	m.UploadStarted(0)("r", ResultOK, 1000, 0)
	h := histogram(t, m.fileSize)
	b := h.GetBucket()
	if got := b[0].GetCumulativeCount(); got != 1 {
		t.Errorf("le=1024 holds %d, want 1", got)
	}
	if got := b[len(b)-2].GetCumulativeCount(); got != 1 {
		t.Errorf("le=4TiB holds %d, want 1", got)
	}
	if got := b[len(b)-1].GetCumulativeCount(); got != 2 {
		t.Errorf("le=5TiB holds %d, want 2", got)
	}
}

func TestCounters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		call   func(m *Metrics)
		metric string
		want   string
	}{
		{
			name:   "auth failure",
			call:   func(m *Metrics) { m.AuthFailure("missing"); m.AuthFailure("missing"); m.AuthFailure("expired") },
			metric: "upload_gateway_auth_failures_total",
			want: `upload_gateway_auth_failures_total{reason="expired"} 1
upload_gateway_auth_failures_total{reason="missing"} 2`,
		},
		{
			name:   "access denied",
			call:   func(m *Metrics) { m.AccessDenied("upload") },
			metric: "upload_gateway_access_denied_total",
			want:   `upload_gateway_access_denied_total{action="upload"} 1`,
		},
		{
			name:   "presign",
			call:   func(m *Metrics) { m.Presign("put"); m.Presign("get") },
			metric: "upload_gateway_presign_total",
			want: `upload_gateway_presign_total{kind="get"} 1
upload_gateway_presign_total{kind="put"} 1`,
		},
		{
			name:   "sts",
			call:   func(m *Metrics) { m.STSRequest("error", time.Second) },
			metric: "upload_gateway_sts_requests_total",
			want:   `upload_gateway_sts_requests_total{result="error"} 1`,
		},
		{
			name: "s3",
			call: func(m *Metrics) {
				m.S3Request("UploadPart", "ok", time.Second)
				m.S3Request("UploadPart", "ok", time.Second)
			},
			metric: "upload_gateway_s3_requests_total",
			want:   `upload_gateway_s3_requests_total{operation="UploadPart",result="ok"} 2`,
		},
		{
			name:   "aborted",
			call:   func(m *Metrics) { m.Aborted("too_large") },
			metric: "upload_gateway_aborted_uploads_total",
			want:   `upload_gateway_aborted_uploads_total{reason="too_large"} 1`,
		},
		{
			name:   "rolled back ignores n <= 0",
			call:   func(m *Metrics) { m.RolledBack(2); m.RolledBack(0); m.RolledBack(-1) },
			metric: "upload_gateway_rolled_back_objects_total",
			want:   `upload_gateway_rolled_back_objects_total 2`,
		},
		{
			name:   "cloudwatch dropped",
			call:   func(m *Metrics) { m.CloudWatchDropped(7); m.CloudWatchDropped(0) },
			metric: "upload_gateway_cloudwatch_dropped_total",
			want:   `upload_gateway_cloudwatch_dropped_total 7`,
		},
		{
			name:   "cloudwatch put errors",
			call:   func(m *Metrics) { m.CloudWatchPutError(errors.New("x")); m.CloudWatchPutError(errors.New("y")) },
			metric: "upload_gateway_cloudwatch_put_errors_total",
			want:   `upload_gateway_cloudwatch_put_errors_total 2`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, reg := newMetrics(t)
			tt.call(m)
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, mf := range mfs {
				if mf.GetName() != tt.metric {
					continue
				}
				for _, s := range mf.GetMetric() {
					got = append(got, seriesLine(tt.metric, s))
				}
			}
			if g := strings.Join(got, "\n"); g != tt.want {
				t.Errorf("got\n%s\nwant\n%s", g, tt.want)
			}
		})
	}
}

func TestJanitorSwept(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.JanitorSwept("files/", 3, 10<<20, 3)
	m.JanitorSwept("files/", 0, 0, 0) // the next sweep found nothing left
	gatherAndCompare(t, reg, `
# HELP upload_gateway_orphan_bytes Bytes in the parts of the orphaned multipart uploads of the janitor's last sweep, by prefix.
# TYPE upload_gateway_orphan_bytes gauge
upload_gateway_orphan_bytes{prefix="files/"} 0
# HELP upload_gateway_orphan_uploads Multipart uploads older than the janitor's max age found by its last sweep, by prefix.
# TYPE upload_gateway_orphan_uploads gauge
upload_gateway_orphan_uploads{prefix="files/"} 0
# HELP upload_gateway_orphans_aborted_total Orphaned multipart uploads the janitor aborted, by prefix.
# TYPE upload_gateway_orphans_aborted_total counter
upload_gateway_orphans_aborted_total{prefix="files/"} 3
`, "upload_gateway_orphan_bytes", "upload_gateway_orphan_uploads", "upload_gateway_orphans_aborted_total")
	var nilMetrics *Metrics
	nilMetrics.JanitorSwept("x", 1, 1, 1) // no-op, no panic
}
