package metrics

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// The helpers below do what prometheus/testutil's ToFloat64,
// GatherAndCompare and GatherAndCount do. testutil itself needs a module
// (its diff library) that this module's go.sum does not list.

// toFloat64 returns the value of the only counter or gauge series that c
// collects, like testutil.ToFloat64.
func toFloat64(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	go func() { c.Collect(ch); close(ch) }()
	var ms []prometheus.Metric
	for m := range ch {
		ms = append(ms, m)
	}
	if len(ms) != 1 {
		t.Fatalf("collected %d series, want exactly 1", len(ms))
	}
	var pb dto.Metric
	if err := ms[0].Write(&pb); err != nil {
		t.Fatalf("Write: %v", err)
	}
	switch {
	case pb.Counter != nil:
		return pb.GetCounter().GetValue()
	case pb.Gauge != nil:
		return pb.GetGauge().GetValue()
	case pb.Untyped != nil:
		return pb.GetUntyped().GetValue()
	}
	t.Fatalf("series %s is neither a counter nor a gauge", ms[0].Desc())
	return 0
}

// gatherAndCompare gathers the named metric families from g and compares
// them, in the text exposition format, with want, like
// testutil.GatherAndCompare.
func gatherAndCompare(t testing.TB, g prometheus.Gatherer, want string, names ...string) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if len(names) > 0 && !keep[mf.GetName()] {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("Encode: %v", err)
		}
	}
	got := strings.TrimSpace(buf.String())
	want = strings.TrimSpace(want)
	if got != want {
		t.Errorf("gathered metrics differ\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// gatherAndCount returns the number of series g exports, like
// testutil.GatherAndCount.
func gatherAndCount(t testing.TB, g prometheus.Gatherer) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return n
}

// histogram reads the current state of one histogram series.
func histogram(t testing.TB, c prometheus.Metric) *dto.Histogram {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if m.GetHistogram() == nil {
		t.Fatalf("%v is not a histogram", c.Desc())
	}
	return m.GetHistogram()
}

// seriesLine formats a counter sample as in the text exposition format.
func seriesLine(name string, m *dto.Metric) string {
	var b strings.Builder
	b.WriteString(name)
	if len(m.GetLabel()) > 0 {
		b.WriteByte('{')
		for i, l := range m.GetLabel() {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=%q", l.GetName(), l.GetValue())
		}
		b.WriteByte('}')
	}
	fmt.Fprintf(&b, " %v", m.GetCounter().GetValue())
	return b.String()
}
