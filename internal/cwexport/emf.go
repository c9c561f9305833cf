package cwexport

import (
	"cmp"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// EMFWriter writes each observation at once as a CloudWatch Embedded
// Metric Format JSON line. It does not aggregate; see the package
// documentation. It is safe for concurrent use.
type EMFWriter struct {
	w         io.Writer
	namespace string
	now       func() time.Time

	dropped atomic.Int64

	mu  sync.Mutex // serializes writes and guards buf
	buf []byte
}

// NewEMFWriter returns a writer of EMF lines to w in namespace
// (UploadGateway if empty).
func NewEMFWriter(w io.Writer, namespace string) *EMFWriter {
	return &EMFWriter{w: w, namespace: cmp.Or(namespace, DefaultNamespace), now: time.Now}
}

// Observe writes one line holding value for the metric name in unit
// (None if empty), with the given dimensions as one dimension set.
// Observations CloudWatch would reject, or whose dimension is named like
// the metric or "_aws", are dropped and counted, as are lines w failed
// to write.
func (e *EMFWriter) Observe(name string, unit types.StandardUnit, value float64, dims ...types.Dimension) {
	if !validObservation(name, value, dims) || name == "_aws" {
		e.dropped.Add(1)
		return
	}
	for _, d := range dims {
		if *d.Name == name || *d.Name == "_aws" {
			e.dropped.Add(1)
			return
		}
	}
	unit = cmp.Or(unit, types.StandardUnitNone)
	var arr [8]types.Dimension
	sorted := append(arr[:0], dims...)
	sortDims(sorted)

	e.mu.Lock()
	defer e.mu.Unlock()
	b := append(e.buf[:0], `{"_aws":{"Timestamp":`...)
	b = strconv.AppendInt(b, e.now().UnixMilli(), 10)
	b = append(b, `,"CloudWatchMetrics":[{"Namespace":`...)
	b = appendJSONString(b, e.namespace)
	b = append(b, `,"Dimensions":[[`...)
	for i, d := range sorted {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, *d.Name)
	}
	b = append(b, `]],"Metrics":[{"Name":`...)
	b = appendJSONString(b, name)
	b = append(b, `,"Unit":`...)
	b = appendJSONString(b, string(unit))
	b = append(b, `}]}]}`...)
	for _, d := range sorted {
		b = append(b, ',')
		b = appendJSONString(b, *d.Name)
		b = append(b, ':')
		b = appendJSONString(b, *d.Value)
	}
	b = append(b, ',')
	b = appendJSONString(b, name)
	b = append(b, ':')
	b = strconv.AppendFloat(b, value, 'g', -1, 64)
	b = append(b, '}', '\n')
	e.buf = b
	if _, err := e.w.Write(b); err != nil {
		e.dropped.Add(1)
	}
}

// Dropped returns how many observations were not written so far.
func (e *EMFWriter) Dropped() int64 {
	return e.dropped.Load()
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}
