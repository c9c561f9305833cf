package cwexport

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// emfLine is the _aws part of an EMF line.
type emfLine struct {
	AWS struct {
		Timestamp         int64
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	} `json:"_aws"`
}

// parseEMF decodes every line of out, strictly: each must be one JSON
// object.
func parseEMF(t *testing.T, out []byte) (lines []emfLine, members []map[string]any) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var l emfLine
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		delete(m, "_aws")
		lines = append(lines, l)
		members = append(members, m)
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		t.Errorf("output does not end with a newline: %q", out)
	}
	return lines, members
}

func TestEMFWriter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		metric     string
		unit       types.StandardUnit
		value      float64
		dims       []types.Dimension
		wantDims   []string
		wantUnit   string
		wantFields map[string]any
	}{
		{
			name: "upload duration", metric: MetricUploadDuration, unit: types.StandardUnitMilliseconds, value: 1234.5,
			dims:       []types.Dimension{Dim(DimRole, "uploader"), Dim(DimResult, "ok")},
			wantDims:   []string{"Result", "Role"},
			wantUnit:   "Milliseconds",
			wantFields: map[string]any{"Result": "ok", "Role": "uploader", "UploadDuration": 1234.5},
		},
		{
			name: "no dimensions, no unit", metric: MetricAPIRequestCount, value: 1,
			wantDims:   []string{},
			wantUnit:   "None",
			wantFields: map[string]any{"ApiRequestCount": 1.0},
		},
		{
			name: "large value", metric: MetricFileSize, unit: types.StandardUnitBytes, value: 5 << 40,
			dims:       []types.Dimension{Dim(DimRole, "admin")},
			wantDims:   []string{"Role"},
			wantUnit:   "Bytes",
			wantFields: map[string]any{"Role": "admin", "FileSize": float64(5 << 40)},
		},
		{
			name: "speed", metric: MetricUploadSpeed, unit: types.StandardUnitBytesSecond, value: 2.5e-3,
			dims:       []types.Dimension{Dim(DimRole, "uploader")},
			wantDims:   []string{"Role"},
			wantUnit:   "Bytes/Second",
			wantFields: map[string]any{"Role": "uploader", "UploadSpeed": 2.5e-3},
		},
		{
			name: "strings needing escapes", metric: "Odd\"Name\\", unit: types.StandardUnitCount, value: -2,
			dims:       []types.Dimension{Dim("Route", "a\"b\\c\nd\te\u0001é€😀"), Dim("Bad", "x\xffy")},
			wantDims:   []string{"Bad", "Route"},
			wantUnit:   "Count",
			wantFields: map[string]any{"Odd\"Name\\": -2.0, "Route": "a\"b\\c\nd\te\u0001é€😀", "Bad": "x\uFFFDy"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			w := NewEMFWriter(&buf, "")
			w.now = fixedNow
			w.Observe(tt.metric, tt.unit, tt.value, tt.dims...)
			if w.Dropped() != 0 {
				t.Fatalf("Dropped() = %d, want 0", w.Dropped())
			}
			lines, fields := parseEMF(t, buf.Bytes())
			if len(lines) != 1 {
				t.Fatalf("wrote %d lines, want 1: %q", len(lines), buf.String())
			}
			aws := lines[0].AWS
			if aws.Timestamp != t0.UnixMilli() {
				t.Errorf("Timestamp = %d, want %d", aws.Timestamp, t0.UnixMilli())
			}
			if len(aws.CloudWatchMetrics) != 1 {
				t.Fatalf("CloudWatchMetrics has %d entries, want 1", len(aws.CloudWatchMetrics))
			}
			cwm := aws.CloudWatchMetrics[0]
			if cwm.Namespace != DefaultNamespace {
				t.Errorf("Namespace = %q, want %q", cwm.Namespace, DefaultNamespace)
			}
			if len(cwm.Dimensions) != 1 || !reflect.DeepEqual(cwm.Dimensions[0], tt.wantDims) {
				t.Errorf("Dimensions = %q, want [%q]", cwm.Dimensions, tt.wantDims)
			}
			if len(cwm.Metrics) != 1 || cwm.Metrics[0].Name != tt.metric || cwm.Metrics[0].Unit != tt.wantUnit {
				t.Errorf("Metrics = %+v, want [{Name:%s Unit:%s}]", cwm.Metrics, tt.metric, tt.wantUnit)
			}
			if !reflect.DeepEqual(fields[0], tt.wantFields) {
				t.Errorf("members = %#v, want %#v", fields[0], tt.wantFields)
			}
		})
	}
}

func TestEMFWriterNamespace(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := NewEMFWriter(&buf, "Custom/NS")
	w.Observe(MetricUploadCount, types.StandardUnitCount, 1)
	lines, _ := parseEMF(t, buf.Bytes())
	if got := lines[0].AWS.CloudWatchMetrics[0].Namespace; got != "Custom/NS" {
		t.Errorf("Namespace = %q, want %q", got, "Custom/NS")
	}
}

func TestEMFWriterDrops(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		metric string
		value  float64
		dims   []types.Dimension
	}{
		{"NaN", "M", math.NaN(), nil},
		{"empty name", "", 1, nil},
		{"metric named _aws", "_aws", 1, nil},
		{"dimension named like the metric", "Role", 1, []types.Dimension{Dim("Role", "x")}},
		{"dimension named _aws", "M", 1, []types.Dimension{Dim("_aws", "x")}},
		{"31 dimensions", "M", 1, make([]types.Dimension, 31)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			w := NewEMFWriter(&buf, "")
			w.Observe(tt.metric, types.StandardUnitCount, tt.value, tt.dims...)
			if w.Dropped() != 1 || buf.Len() != 0 {
				t.Errorf("Dropped() = %d, wrote %q; want 1 and nothing", w.Dropped(), buf.String())
			}
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestEMFWriterWriteError(t *testing.T) {
	t.Parallel()
	w := NewEMFWriter(failingWriter{}, "")
	w.Observe(MetricUploadCount, types.StandardUnitCount, 1)
	if w.Dropped() != 1 {
		t.Errorf("Dropped() = %d after a failed write, want 1", w.Dropped())
	}
}

// lineWriter records each Write call.
type lineWriter struct {
	mu     sync.Mutex
	writes []string
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes = append(l.writes, string(p))
	return len(p), nil
}

func TestEMFWriterConcurrentWholeLines(t *testing.T) {
	t.Parallel()
	var lw lineWriter
	w := NewEMFWriter(&lw, "")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				w.Observe(MetricUploadDuration, types.StandardUnitMilliseconds, float64(g*1000+i),
					Dim(DimRole, strings.Repeat("r", g+1)), Dim(DimResult, "ok"))
			}
		})
	}
	wg.Wait()
	if len(lw.writes) != 800 {
		t.Fatalf("got %d writes, want 800", len(lw.writes))
	}
	seen := map[float64]bool{}
	for _, s := range lw.writes {
		if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
			t.Fatalf("write %q is not exactly one line", s)
		}
		_, fields := parseEMF(t, []byte(s))
		seen[fields[0][MetricUploadDuration].(float64)] = true
	}
	if len(seen) != 800 {
		t.Errorf("got %d distinct values, want 800", len(seen))
	}
}

func BenchmarkEMFWriterObserve(b *testing.B) {
	w := NewEMFWriter(discard{}, "")
	role, result := Dim(DimRole, "uploader"), Dim(DimResult, "ok")
	b.ReportAllocs()
	for b.Loop() {
		w.Observe(MetricUploadDuration, types.StandardUnitMilliseconds, 1234, role, result)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
