package metricsapp

import (
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"
)

// One outcome feeds every sink once: the request and upload series, the
// upload-only counters, and an audit line only for audited actions.
func TestRecorderRecordsEachOutcomeOnce(t *testing.T) {
	tests := []struct {
		name      string
		outcome   metrics.Outcome
		upload    bool
		want      string // Prometheus series that must be there, by their value
		wantAudit string // the audit line's result, "" for none
	}{
		{
			name:    "stored upload",
			outcome: metrics.Outcome{Route: "r", Endpoint: "upload", Action: "upload", Role: "uploader", Result: metrics.ResultOK, Status: 201, Duration: time.Second, Bytes: 10, Files: 1, Key: "k"},
			upload:  true,
			want: `
upload_gateway_requests_total{endpoint="upload",route="r",status="201"} 1
upload_gateway_uploads_total{result="ok",role="uploader"} 1
upload_gateway_upload_bytes_total{role="uploader"} 10
`,
			wantAudit: "ok",
		},
		{
			name:    "denied upload",
			outcome: metrics.Outcome{Route: "r", Endpoint: "upload", Action: "upload", Role: "viewer", Result: metrics.ResultDenied, Status: 403, Reason: "FORBIDDEN"},
			upload:  true,
			want: `
upload_gateway_uploads_total{result="rejected",role="viewer"} 1
upload_gateway_access_denied_total{action="upload"} 1
`,
			wantAudit: "denied",
		},
		{
			name:    "rolled back after an aborted part",
			outcome: metrics.Outcome{Route: "r", Endpoint: "upload", Action: "upload", Role: "uploader", Result: metrics.ResultRolledBack, Status: 500, Aborted: true, Reason: "STORAGE_ERROR", RolledBack: 2},
			upload:  true,
			want: `
upload_gateway_aborted_uploads_total{reason="STORAGE_ERROR"} 1
upload_gateway_rolled_back_objects_total 2
`,
			wantAudit: "rolled_back",
		},
		{
			name:    "file API read, not audited",
			outcome: metrics.Outcome{Route: "files/", Endpoint: "GET /files", Result: metrics.ResultOK, Status: 200},
			want: `
upload_gateway_requests_total{endpoint="GET /files",route="files/",status="200"} 1
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := metrics.New(reg)
			if err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zapcore.InfoLevel)
			rc := &Recorder{Metrics: m, Audit: zap.New(core)}
			r := httptest.NewRequest("POST", "/up", nil)
			if tt.upload {
				rc.Upload(0)(r, tt.outcome)
			} else {
				rc.Record(r, tt.outcome)
			}
			if got := gatherLines(t, reg); !containsAll(got, tt.want) {
				t.Errorf("series:\n%s\nwant among them:\n%s", got, tt.want)
			}
			switch entries := logs.All(); {
			case tt.wantAudit == "" && len(entries) != 0:
				t.Errorf("audit lines %v, want none", entries)
			case tt.wantAudit != "" && (len(entries) != 1 || entries[0].ContextMap()["result"] != tt.wantAudit):
				t.Errorf("audit lines %v, want one with result %s", entries, tt.wantAudit)
			}
		})
	}
}

// gatherLines is every counter series of reg, one "name{labels} value" a line.
func gatherLines(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			name := f.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			fmt.Fprintf(&b, "%s %s\n", name, strconv.FormatFloat(m.GetCounter().GetValue(), 'g', -1, 64))
		}
	}
	return b.String()
}

func containsAll(got, want string) bool {
	for _, line := range strings.Split(strings.TrimSpace(want), "\n") {
		if !strings.Contains(got, strings.TrimSpace(line)+"\n") {
			return false
		}
	}
	return true
}

// An upload that went straight to S3 counts in the same upload series as a
// streamed one, next to its request's own series, with one audit line:
// action "upload", its method, size, parts and the upload's duration.
func TestRecorderUploaded(t *testing.T) {
	tests := []struct {
		name      string
		outcome   metrics.Outcome
		upload    time.Duration
		want      string
		wantAudit map[string]any
		wantNo    []string // audit fields that must be absent
	}{
		{
			name: "multipart completed",
			outcome: metrics.Outcome{Route: "files/", Endpoint: "POST /files/multipart/complete", Role: "uploader", Result: metrics.ResultOK,
				Status: 200, Duration: 20 * time.Millisecond, Bytes: 40 << 20, Parts: 3, Files: 1, Method: "multipart", Key: "k", UploadID: "u"},
			upload: 4 * time.Second,
			want: `
upload_gateway_requests_total{endpoint="POST /files/multipart/complete",route="files/",status="200"} 1
upload_gateway_uploads_total{result="ok",role="uploader"} 1
upload_gateway_upload_bytes_total{role="uploader"} 4.194304e+07
`,
			wantAudit: map[string]any{"action": "upload", "result": "ok", "method": "multipart", "size": int64(40 << 20), "parts": int64(3), "duration": 4.0, "key": "k", "upload_id": "u"},
		},
		{
			name: "presigned PUT refused on confirm, duration unknown",
			outcome: metrics.Outcome{Route: "files/", Endpoint: "POST /files/{fileId}/confirm", Role: "uploader", Result: metrics.ResultRejected,
				Status: 415, Duration: 5 * time.Millisecond, Bytes: 7, Method: "presigned", Key: "k"},
			want: `
upload_gateway_requests_total{endpoint="POST /files/{fileId}/confirm",route="files/",status="415"} 1
upload_gateway_uploads_total{result="rejected",role="uploader"} 1
upload_gateway_upload_bytes_total{role="uploader"} 7
`,
			wantAudit: map[string]any{"action": "upload", "result": "rejected", "method": "presigned", "size": int64(7), "status": int64(415)},
			wantNo:    []string{"duration", "parts"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := metrics.New(reg)
			if err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zapcore.InfoLevel)
			rc := &Recorder{Metrics: m, Audit: zap.New(core)}
			rc.Uploaded(httptest.NewRequest("POST", "/files", nil), tt.outcome, tt.upload)
			if got := gatherLines(t, reg); !containsAll(got, tt.want) {
				t.Errorf("series:\n%s\nwant among them:\n%s", got, tt.want)
			}
			entries := logs.All()
			if len(entries) != 1 {
				t.Fatalf("audit lines %v, want one", entries)
			}
			fields := entries[0].ContextMap()
			for k, want := range tt.wantAudit {
				if got := fields[k]; got != want {
					t.Errorf("audit %s = %#v, want %#v", k, got, want)
				}
			}
			for _, k := range tt.wantNo {
				if _, ok := fields[k]; ok {
					t.Errorf("audit has %s: %v", k, fields)
				}
			}
			// The upload's duration is observed only when known.
			n := histogramCount(t, reg, "upload_gateway_upload_duration_seconds")
			if want := map[bool]uint64{true: 1, false: 0}[tt.upload > 0]; n != want {
				t.Errorf("upload_duration_seconds count %d, want %d", n, want)
			}
		})
	}
}

// histogramCount is the sample count of a histogram family of reg.
func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}
