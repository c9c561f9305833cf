package metrics

import (
	"testing"
	"time"
)

// BenchmarkUploadObserve measures every metric update of one successful
// multipart upload: start, done, and the request line.
func BenchmarkUploadObserve(b *testing.B) {
	m, _ := newMetrics(b)
	b.ReportAllocs()
	for b.Loop() {
		done := m.UploadStarted(64 << 20)
		m.S3Request("UploadPart", "ok", 20*time.Millisecond)
		done("uploader", ResultOK, 64<<20, 8)
		m.ObserveRequest("site", "upload", 201, 2*time.Second)
	}
}

// BenchmarkObserveRequest measures the per-request update alone.
func BenchmarkObserveRequest(b *testing.B) {
	m, _ := newMetrics(b)
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveRequest("site", "presign", 200, time.Millisecond)
	}
}

// BenchmarkNilMetrics is the cost with metrics disabled.
func BenchmarkNilMetrics(b *testing.B) {
	var m *Metrics
	b.ReportAllocs()
	for b.Loop() {
		done := m.UploadStarted(64 << 20)
		done("uploader", ResultOK, 64<<20, 8)
		m.ObserveRequest("site", "upload", 201, 2*time.Second)
	}
}

// BenchmarkUploadObserveParallel shows contention on the shared series.
func BenchmarkUploadObserveParallel(b *testing.B) {
	m, _ := newMetrics(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done := m.UploadStarted(64 << 20)
			done("uploader", ResultOK, 64<<20, 8)
			m.ObserveRequest("site", "upload", 201, 2*time.Second)
		}
	})
}
