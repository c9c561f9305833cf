package metrics

import "time"

// Outcome is what one answered request did: the one value a handler hands
// to its recorder, which feeds Prometheus, CloudWatch/EMF and the audit
// log from it.
type Outcome struct {
	Route    string // the configured route name
	Endpoint string // the operation or matched route pattern ("upload", "GET /files/{fileId}", …)
	Action   string // the audited action ("upload", "download_url", …); "" when not audited
	Role     string // the user's role, "anonymous" without one
	Result   string // ok, denied, rejected, failed, aborted, rolled_back
	Status   int
	Duration time.Duration
	Bytes    int64 // bytes stored
	Parts    int   // multipart parts sent
	Files    int   // files stored
	Key      string
	UploadID string
	Reason   string // the error code of a failure
	Account  string // the account a login was for

	// Aborted is set when a multipart upload was aborted.
	Aborted bool
	// RolledBack is how many stored objects were deleted again.
	RolledBack int
}

// Audit results that the metrics count under another result.
const (
	AuditDenied = "denied" // counted as ResultRejected
)

// MetricResult is the metrics result of an outcome: "denied" is counted
// as rejected.
func (o Outcome) MetricResult() string {
	if o.Result == AuditDenied {
		return ResultRejected
	}
	return o.Result
}
