package cwexport

import (
	"math"
	"slices"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// Metric names the gateway sends, with the unit each is sent in.
const (
	MetricAPIRequestDuration = "ApiRequestDuration" // Milliseconds
	MetricAPIRequestCount    = "ApiRequestCount"    // Count
	MetricUploadDuration     = "UploadDuration"     // Milliseconds
	MetricUploadSpeed        = "UploadSpeed"        // Bytes/Second
	MetricFileSize           = "FileSize"           // Bytes
	MetricMultipartPartCount = "MultipartPartCount" // Count
	MetricUploadCount        = "UploadCount"        // Count
	MetricAuthFailureCount   = "AuthFailureCount"   // Count
	MetricAccessDeniedCount  = "AccessDeniedCount"  // Count
)

// Dimension names the gateway uses.
const (
	DimRole   = "Role"
	DimRoute  = "Route"
	DimResult = "Result"
	DimReason = "Reason"
)

// Dim returns a dimension. It is shorthand for a types.Dimension literal.
func Dim(name, value string) types.Dimension {
	return types.Dimension{Name: &name, Value: &value}
}

// CloudWatch limits that make a whole PutMetricData request fail when
// exceeded, so offending observations are dropped before they are sent.
const (
	maxDimensions     = 30
	maxNameLen        = 255 // metric and dimension names
	maxDimValueLen    = 1024
	maxDistinctValues = 150 // Values/Counts entries per datum
	maxDatums         = 1000
	maxRequestBytes   = 1 << 20
	// minAbs and maxAbs bound the magnitude of a non-zero value.
	minAbs = 8.515920e-109
	maxAbs = 1.174271e+108
)

// validValue reports whether CloudWatch accepts v.
func validValue(v float64) bool {
	a := math.Abs(v)
	return v == 0 || a >= minAbs && a <= maxAbs // false for NaN, ±Inf too
}

// validObservation reports whether CloudWatch accepts the observation.
// Dimension names must be distinct.
func validObservation(name string, value float64, dims []types.Dimension) bool {
	if name == "" || len(name) > maxNameLen || !validValue(value) || len(dims) > maxDimensions {
		return false
	}
	for i, d := range dims {
		if d.Name == nil || d.Value == nil {
			return false
		}
		n, v := *d.Name, *d.Value
		if n == "" || len(n) > maxNameLen || n[0] == ':' || v == "" || len(v) > maxDimValueLen {
			return false
		}
		if slices.ContainsFunc(dims[:i], func(prev types.Dimension) bool { return *prev.Name == n }) {
			return false // one name twice
		}
	}
	return true
}
