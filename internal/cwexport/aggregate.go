package cwexport

import (
	"cmp"
	"encoding/binary"
	"maps"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// aggregate is one metric (name, unit, dimensions) within one window.
type aggregate struct {
	key  string
	name string
	unit types.StandardUnit
	dims []types.Dimension // sorted by name

	// values counts each distinct value; nil once there were more than
	// maxDistinctValues, and from then on only the statistics count.
	values             map[float64]float64
	n, sum, minV, maxV float64
}

func newAggregate(key, name string, unit types.StandardUnit, dims []types.Dimension) *aggregate {
	return &aggregate{key: key, name: name, unit: unit, dims: dims, values: make(map[float64]float64, 4)}
}

// observe adds value v seen count times.
func (a *aggregate) observe(v, count float64) {
	if a.n == 0 || v < a.minV {
		a.minV = v
	}
	if a.n == 0 || v > a.maxV {
		a.maxV = v
	}
	a.n += count
	a.sum += v * count
	if a.values == nil {
		return
	}
	if _, seen := a.values[v]; seen || len(a.values) < maxDistinctValues {
		a.values[v] += count
		return
	}
	a.values = nil // too many distinct values: statistic set from now on
}

// merge adds the observations of b, an aggregate of the same metric.
func (a *aggregate) merge(b *aggregate) {
	if b.values != nil {
		for v, c := range b.values {
			a.observe(v, c)
		}
		return
	}
	if a.n == 0 || b.minV < a.minV {
		a.minV = b.minV
	}
	if a.n == 0 || b.maxV > a.maxV {
		a.maxV = b.maxV
	}
	a.n += b.n
	a.sum += b.sum
	a.values = nil
}

// datum returns the aggregate as a MetricDatum stamped ts: distinct
// values with their counts, in increasing order, or a statistic set.
func (a *aggregate) datum(ts time.Time) types.MetricDatum {
	d := types.MetricDatum{
		MetricName: &a.name,
		Unit:       a.unit,
		Dimensions: a.dims,
		Timestamp:  &ts,
	}
	if a.values == nil {
		d.StatisticValues = &types.StatisticSet{
			SampleCount: &a.n,
			Sum:         &a.sum,
			Minimum:     &a.minV,
			Maximum:     &a.maxV,
		}
		return d
	}
	d.Values = slices.Sorted(maps.Keys(a.values))
	d.Counts = make([]float64, len(d.Values))
	for i, v := range d.Values {
		d.Counts[i] = a.values[v]
	}
	return d
}

// Size estimate of a request. PutMetricData is limited to 1 MB. The
// estimate assumes the form encoding of the older query protocol, the
// largest encoding the service accepts, with every character of a name
// percent-encoded and every number at its longest, so it stays above the
// CBOR body the current client sends (about 9 bytes per number).
const (
	requestOverhead = 256 // Action, Version, signing-independent keys
	datumOverhead   = 320 // MetricData.member.N.{MetricName,Unit,Timestamp,...}=
	dimOverhead     = 110 // MetricData.member.N.Dimensions.member.M.{Name,Value}=
	valueSize       = 140 // a Values and a Counts entry: key, 24-char number, &
	statisticsSize  = 320 // StatisticValues.{SampleCount,Sum,Minimum,Maximum}
	requestBudget   = maxRequestBytes - 64<<10
)

// size estimates the encoded size of a's datum, generously.
func (a *aggregate) size() int {
	n := datumOverhead + 3*len(a.name) + len(a.unit)
	for _, d := range a.dims {
		n += dimOverhead + 3*(len(*d.Name)+len(*d.Value))
	}
	if a.values == nil {
		return n + statisticsSize
	}
	return n + valueSize*len(a.values)
}

// batches splits aggs into requests of at most maxDatums datums and
// requestBudget estimated bytes.
func batches(aggs []*aggregate, namespace string) [][]*aggregate {
	var out [][]*aggregate
	overhead := requestOverhead + 3*len(namespace)
	start, size := 0, overhead
	for i, a := range aggs {
		s := a.size()
		if i > start && (i-start == maxDatums || size+s > requestBudget) {
			out = append(out, aggs[start:i])
			start, size = i, overhead
		}
		size += s
	}
	if start < len(aggs) {
		out = append(out, aggs[start:])
	}
	return out
}

// observations returns how many observations the aggregates hold.
func observations(aggs []*aggregate) int {
	var n float64
	for _, a := range aggs {
		n += a.n
	}
	return int(n)
}

func sortedAggregates(m map[string]*aggregate) []*aggregate {
	return slices.SortedFunc(maps.Values(m), func(a, b *aggregate) int { return cmp.Compare(a.key, b.key) })
}

func sortDims(dims []types.Dimension) {
	if len(dims) < 2 {
		return
	}
	slices.SortFunc(dims, func(a, b types.Dimension) int { return cmp.Compare(*a.Name, *b.Name) })
}

// appendKey appends a key identifying the metric: each part prefixed by
// its length, so no two metrics share a key whatever their names hold.
func appendKey(b []byte, name string, unit types.StandardUnit, dims []types.Dimension) []byte {
	b = appendPart(b, name)
	b = appendPart(b, string(unit))
	for _, d := range dims {
		b = appendPart(b, *d.Name)
		b = appendPart(b, *d.Value)
	}
	return b
}

func appendPart(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
