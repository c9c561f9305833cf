// Package metrics owns the upload gateway's Prometheus collectors and the
// small methods the gateway calls to update them.
//
// # Setup
//
// Build one [Metrics] per gateway instance with [New], passing the
// registry it must register with. In Caddy that is
// ctx.GetMetricsRegistry(), so the series show up on Caddy's own metrics
// endpoint (the admin API's /metrics, or the metrics handler). The
// package never touches the process-wide default registry.
//
//	m, err := metrics.New(ctx.GetMetricsRegistry())
//	if err != nil {
//		return fmt.Errorf("registering metrics: %v", err)
//	}
//
// Calling New again on the same registry, as happens on every Caddy
// config reload while the old instance is still serving, is not an
// error: New reuses the collectors that are already registered, so
// counters keep counting across reloads instead of restarting at zero,
// and old and new instances write into the same series. New fails only
// if a collector with the same name but a different shape (help text,
// label names, type) is already registered, for example after an upgrade
// that changed a metric, in which case restart the process.
//
// A nil *Metrics is valid: every method is a no-op, so code paths work
// the same with metrics disabled.
//
// # Series
//
// Every name starts with upload_gateway_. Durations are in seconds,
// sizes in bytes. Labels only take values chosen by the gateway's code or
// configuration (route names, role names, a fixed set of results and
// reasons, HTTP status codes), never values taken from a request such as
// object keys, user names or raw paths, so the number of series stays
// small and bounded.
//
//	requests_total{route,endpoint,status}            counter   HTTP requests answered
//	request_duration_seconds{route,endpoint,status}  histogram time to answer them
//	uploads_total{role,result}                       counter   finished uploads by result
//	upload_duration_seconds{role,result}             histogram time from first byte to result
//	upload_bytes_total{role}                         counter   bytes received, whatever the result
//	upload_speed_bytes_per_second                    histogram bytes/second of successful uploads
//	file_size_bytes                                  histogram size of stored objects (1 KiB .. 5 TiB)
//	multipart_parts                                  histogram parts per multipart upload
//	uploads_in_flight                                gauge     uploads in progress
//	upload_bytes_in_flight                           gauge     announced size of uploads in progress
//	auth_failures_total{reason}                      counter   rejected credentials (401)
//	access_denied_total{action}                      counter   authenticated but not allowed (403)
//	presign_total{kind}                              counter   presigned URLs issued
//	sts_requests_total{result}                       counter   STS calls (credentials for S3)
//	sts_request_duration_seconds                     histogram their latency
//	s3_requests_total{operation,result}              counter   S3 API calls
//	s3_request_duration_seconds{operation}           histogram their latency
//	aborted_uploads_total{reason}                    counter   multipart uploads aborted
//	rolled_back_objects_total                        counter   objects deleted to undo a failed request
//	cloudwatch_dropped_total                         counter   CloudWatch observations lost
//	cloudwatch_put_errors_total                      counter   failed CloudWatch PutMetricData calls
//
// The result label of uploads is one of [ResultOK], [ResultRejected],
// [ResultFailed], [ResultAborted] and [ResultRolledBack]. Speed and file
// size are only observed for [ResultOK]: the size of a rejected upload
// is not the size of a stored object. upload_bytes_in_flight counts the
// size announced when the upload started (Content-Length), or nothing
// when it was unknown.
//
// # Useful queries
//
//	sum by (route, status) (rate(upload_gateway_requests_total[5m]))
//	histogram_quantile(0.99, sum by (le, route) (rate(upload_gateway_request_duration_seconds_bucket[5m])))
//	sum by (result) (rate(upload_gateway_uploads_total[5m]))
//	rate(upload_gateway_upload_bytes_total[5m])
//	rate(upload_gateway_auth_failures_total[5m]) > 1
//	increase(upload_gateway_cloudwatch_dropped_total[1h]) > 0
package metrics
