// Package cwexport sends the gateway's metrics to Amazon CloudWatch,
// either through the PutMetricData API ([Exporter]) or as Embedded Metric
// Format log lines ([EMFWriter]) for a log agent to pick up.
//
// Both sinks have the same Observe method, so the gateway can hold either
// behind an interface of its own:
//
//	Observe(name string, unit types.StandardUnit, value float64, dims ...types.Dimension)
//
// # Metrics
//
// The gateway sends these names, in namespace UploadGateway by default,
// with these dimensions. The constants of this package spell them.
//
//	ApiRequestDuration   Milliseconds   per API request        Route, Result
//	ApiRequestCount      Count          per API request        Route, Result
//	UploadDuration       Milliseconds   per finished upload    Role, Result
//	UploadSpeed          Bytes/Second   per successful upload  Role
//	FileSize             Bytes          per stored object      Role
//	MultipartPartCount   Count          per multipart upload   Role
//	UploadCount          Count          per finished upload    Role, Result
//	AuthFailureCount     Count          per rejected token     Reason
//	AccessDeniedCount    Count          per denied request     Role
//
// Each distinct combination of name, unit and dimensions is a separate
// CloudWatch metric, billed as a custom metric, so dimension values must
// come from a small fixed set (route names, roles, results), never from
// requests (keys, user names).
//
// # Exporter: PutMetricData
//
//	cw := cloudwatch.NewFromConfig(awsCfg)
//	exp := cwexport.New(cw, cwexport.Options{
//		OnDrop:  m.CloudWatchDropped,  // *metrics.Metrics
//		OnError: m.CloudWatchPutError,
//	})
//	go exp.Run(ctx) // until ctx is done; then a final flush
//	exp.Observe(cwexport.MetricUploadDuration, types.StandardUnitMilliseconds, 1234,
//		cwexport.Dim(cwexport.DimRole, "uploader"), cwexport.Dim(cwexport.DimResult, "ok"))
//
// Observe never blocks and never does I/O: it puts the observation on a
// queue of QueueSize (10000) entries. Run takes observations off the
// queue and aggregates them per metric (name, unit, dimensions), then
// every Interval (60s) sends what it has. Within one interval a metric
// is sent as the list of its distinct values with the number of times
// each was seen (Values and Counts); once it has more than 150 distinct
// values, the API's limit, it is sent as a statistic set (sample count,
// sum, minimum, maximum) instead, which still gives correct averages,
// sums and extremes but no percentiles. Each datum carries the time its
// interval started. Datums are split into requests of at most 1000
// datums and, by a conservative size estimate, well under the 1 MB
// request limit.
//
// A request that fails is retried MaxRetries (3) times with exponential
// backoff and jitter, on top of the retries the AWS client does itself,
// as long as the interval allows: sending never takes longer than one
// Interval. Errors the service blames on the request (a 4xx other than
// throttling) are not retried. When a request is given up, the
// observations it held are lost and counted.
//
// While a flush is sending, Run does not take observations off the
// queue, so a slow or unreachable endpoint fills the queue and further
// observations are dropped, which bounds memory. Size QueueSize for the
// observations that arrive during one Interval at peak.
//
// When the context given to Run is done, Run sends what is left in a
// final flush bounded by 5 seconds, then returns. A flush in progress at
// that moment is cut short and what it had not sent goes into the final
// flush (a request cut short in flight may have reached CloudWatch and
// is then counted twice). Observations made after Run returns stay
// queued until [Exporter.Flush] is called.
//
// # Losses
//
// [Exporter.Dropped] counts every observation that did not reach
// CloudWatch: the queue was full, the observation was invalid, or its
// request was given up. OnDrop is called with the same counts as they
// happen, OnError with the error of every failed request attempt.
// Invalid observations are those CloudWatch would reject with the whole
// request: an empty name, a value that is NaN, infinite or outside
// CloudWatch's range (about 1e-108 to 1e108 in magnitude, or 0), more
// than 30 dimensions, a dimension with an empty name or value, or a
// name or value over CloudWatch's length limits (255 and 1024).
//
// # Permissions and cost
//
// The exporter needs cloudwatch:PutMetricData, which can be limited to
// the namespace with the cloudwatch:namespace condition key. It makes at
// most one request per Interval per 1000 metrics.
//
// # EMFWriter: Embedded Metric Format
//
// [EMFWriter] writes one JSON line per observation, at once, to an
// io.Writer (typically stdout, collected by the CloudWatch agent, a
// Lambda runtime or Fluent Bit into CloudWatch Logs, which extracts the
// metrics). It does not aggregate: nothing is held in memory, nothing is
// lost on a crash, no goroutine is needed, and the log pipeline does the
// batching. The cost is one log line per observation. Each write is a
// single Write call of a complete line, safe for concurrent use.
//
//	{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"UploadGateway",
//	  "Dimensions":[["Result","Role"]],"Metrics":[{"Name":"UploadDuration","Unit":"Milliseconds"}]}]},
//	  "Result":"ok","Role":"uploader","UploadDuration":1234}
//
// (shown wrapped; it is one line). The same validity rules apply, plus a
// dimension may not be named like the metric or "_aws".
package cwexport
