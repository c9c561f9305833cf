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
