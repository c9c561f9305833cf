package metrics

import (
	"net/http"
	"time"
)

// Outcome is what one answered request did: the one value a handler hands
// to its recorder, which feeds Prometheus, CloudWatch/EMF and the audit
// log from it.
type Outcome struct {
	Route      string // the configured route name
	Endpoint   string // the operation or matched route pattern ("upload", "GET /files/{fileId}", …)
	Action     string // the audited action ("upload", "download_url", …); "" when not audited
	Role       string // the user's role, "anonymous" without one
	Result     string // a Result constant, or ResultDenied
	Status     int
	Duration   time.Duration
	Bytes      int64  // bytes stored
	Parts      int    // multipart parts sent
	Method     string // how an upload's bytes reached S3 when not through the gateway ("presigned", "multipart"); "" through it
	Files      int    // files stored
	Key        string
	UploadID   string
	Reason     string // the error code of a failure
	Account    string // the account a login was for
	Aborted    bool   // a multipart upload was aborted
	RolledBack int    // stored objects deleted again
}

// ResultDenied is the audit result of a request refused for its identity
// or role; metrics count it as ResultRejected.
const ResultDenied = "denied"

// ResultOf is the result of a request answered with status.
func ResultOf(status int) string {
	switch {
	case status < 400:
		return ResultOK
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		return ResultDenied
	case status == 499: // the client closed the request
		return ResultAborted
	case status < 500:
		return ResultRejected
	}
	return ResultFailed
}

// MetricResult is the result under which metrics count the outcome.
func (o Outcome) MetricResult() string {
	if o.Result == ResultDenied {
		return ResultRejected
	}
	return o.Result
}
