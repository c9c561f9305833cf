// Package metricsapp is the `upload_gateway_metrics` Caddy app, which sends
// the gateway's metrics to Amazon CloudWatch and/or as Embedded Metric
// Format lines to a file, the reporting methods the handlers call on it
// ([App.AccessDenied], [App.AuthFailed]), and the [Recorder] that records
// each request's outcome in all sinks at once (a refused token's with
// [Recorder.AuthRefused]). Prometheus metrics are not here: they live in
// internal/metrics and are always on.
package metricsapp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-upload-gateway/upload-gateway/internal/cwexport"
	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	caddy.RegisterModule(App{})
	httpcaddyfile.RegisterGlobalOption("upload_gateway_metrics", parseMetricsApp)
}

// metricsAppID is the app's module ID and its global option name.
const metricsAppID = "upload_gateway_metrics"

// App exports the gateway's metrics to Amazon CloudWatch and/or as
// CloudWatch Embedded Metric Format lines to a file. Prometheus metrics
// need no configuration: they are always in Caddy's metrics registry
// (the admin endpoint's `/metrics` and the `metrics` handler).
//
// Metrics sent: `ApiRequestDuration` (Milliseconds), `ApiRequestCount`,
// `UploadCount`, `UploadDuration` (Milliseconds), `UploadSpeed`
// (Bytes/Second), `FileSize` (Bytes), `MultipartPartCount`,
// `AuthFailureCount` and `AccessDeniedCount` (Count), with Route, Role,
// Result and Reason dimensions.
//
// Caddyfile (global options):
//
//	{
//		upload_gateway_metrics {
//			cloudwatch {
//				namespace  <name>
//				region     <region>
//				endpoint   <url>
//				interval   <duration>
//				queue_size <n>
//			}
//			emf_file <path>
//		}
//	}
type App struct {
	// Export to CloudWatch with PutMetricData.
	CloudWatch *CloudWatchConfig `json:"cloudwatch,omitempty"`

	// Append Embedded Metric Format JSON lines to this file (for the
	// CloudWatch agent or Lambda-style log shipping).
	EMFFile string `json:"emf_file,omitempty"`

	exporter *cwexport.Exporter
	emf      *cwexport.EMFWriter
	emfOut   *os.File
	stop     context.CancelFunc
	done     chan struct{}
	logger   *zap.Logger
}

// CloudWatchConfig configures the CloudWatch exporter.
type CloudWatchConfig struct {
	// The metric namespace. Default `UploadGateway`.
	Namespace string `json:"namespace,omitempty"`
	// The AWS region. Default: from the AWS environment.
	Region string `json:"region,omitempty"`
	// A custom endpoint URL.
	Endpoint string `json:"endpoint,omitempty"`
	// How often aggregated metrics are sent. Default 60s.
	Interval caddy.Duration `json:"interval,omitempty"`
	// How many observations wait for the next flush at most; beyond it they
	// are dropped (and counted), never blocking a request. Default 10000.
	QueueSize int `json:"queue_size,omitempty"`
	// Static access key id; default: the AWS credential chain.
	// Placeholders are expanded.
	AccessKeyID string `json:"access_key_id,omitempty"`

	// Static secret access key; placeholders are expanded.
	SecretAccessKey string `json:"secret_access_key,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  metricsAppID,
		New: func() caddy.Module { return new(App) },
	}
}

// Provision builds the exporter without network calls.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	m, err := metrics.New(ctx.GetMetricsRegistry())
	if err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	if c := a.CloudWatch; c != nil {
		repl := caddy.NewReplacer()
		c.Endpoint = repl.ReplaceAll(c.Endpoint, "")
		c.Region = repl.ReplaceAll(c.Region, "")
		cfg, err := shared.LoadAWSConfig(ctx, shared.AWSSettings{
			Region:          c.Region,
			AccessKeyID:     repl.ReplaceAll(c.AccessKeyID, ""),
			SecretAccessKey: repl.ReplaceAll(c.SecretAccessKey, ""),
		})
		if err != nil {
			return fmt.Errorf("loading AWS configuration: %v", err)
		}
		client := cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
			if c.Endpoint != "" {
				o.BaseEndpoint = aws.String(c.Endpoint)
			}
		})
		a.exporter = cwexport.New(client, cwexport.Options{
			Namespace: c.Namespace,
			Interval:  time.Duration(c.Interval),
			QueueSize: c.QueueSize,
			OnDrop:    m.CloudWatchDropped,
			OnError: func(err error) {
				m.CloudWatchPutError(err)
				a.logger.Warn("sending metrics to CloudWatch failed", zap.Error(err))
			},
		})
	}
	return nil
}

// Validate checks the configuration.
func (a *App) Validate() error {
	if a.CloudWatch == nil && a.EMFFile == "" {
		return errors.New("upload_gateway_metrics: configure cloudwatch and/or emf_file")
	}
	if c := a.CloudWatch; c != nil && (c.QueueSize < 0 || c.Interval < 0) {
		return errors.New("upload_gateway_metrics: queue_size and interval must not be negative")
	}
	return nil
}

// Start starts the exporter and opens the EMF file.
func (a *App) Start() error {
	if a.EMFFile != "" {
		f, err := os.OpenFile(a.EMFFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("opening emf_file: %v", err)
		}
		var namespace string // the default when empty
		if a.CloudWatch != nil {
			namespace = a.CloudWatch.Namespace
		}
		a.emfOut, a.emf = f, cwexport.NewEMFWriter(f, namespace)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.stop, a.done = cancel, make(chan struct{})
	go func() {
		defer close(a.done)
		if a.exporter != nil {
			a.exporter.Run(ctx) // returns after the final flush
		}
	}()
	return nil
}

// Stop flushes what is left and stops.
func (a *App) Stop() error {
	if a.stop != nil {
		a.stop()
		<-a.done
	}
	if a.emfOut != nil {
		return a.emfOut.Close()
	}
	return nil
}

// observe sends one observation to the configured sinks. A nil app does
// nothing; so do all the exported reporting methods below.
func (a *App) observe(name string, unit types.StandardUnit, value float64, dims ...types.Dimension) {
	if a == nil {
		return
	}
	if a.exporter != nil {
		a.exporter.Observe(name, unit, value, dims...)
	}
	if a.emf != nil {
		a.emf.Observe(name, unit, value, dims...)
	}
}

// Sink returns the app when it is configured, else nil.
func Sink(ctx caddy.Context) (*App, error) {
	app, err := ctx.AppIfConfigured(metricsAppID)
	if errors.Is(err, caddy.ErrNotConfigured) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return app.(*App), nil
}

func parseMetricsApp(d *caddyfile.Dispenser, _ any) (any, error) {
	d.Next() // consume option name
	app := new(App)
	err := shared.Subdirectives(d, nil, func(name string) error {
		switch name {
		case "emf_file":
			return shared.OneString(d, &app.EMFFile)
		case "cloudwatch":
			c := new(CloudWatchConfig)
			app.CloudWatch = c
			return shared.Nested(d, func(name string) error {
				switch name {
				case "namespace":
					return shared.OneString(d, &c.Namespace)
				case "region":
					return shared.OneString(d, &c.Region)
				case "endpoint":
					return shared.OneString(d, &c.Endpoint)
				case "interval":
					return shared.Duration(d, &c.Interval)
				case "queue_size":
					return shared.Integer(d, &c.QueueSize)
				case "access_key_id":
					return shared.OneString(d, &c.AccessKeyID)
				case "secret_access_key":
					return shared.OneString(d, &c.SecretAccessKey)
				}
				return d.Errf("unrecognized cloudwatch option %s", name)
			})
		}
		return d.Errf("unrecognized upload_gateway_metrics option %s", name)
	})
	if err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: metricsAppID, Value: caddyconfig.JSON(app, nil)}, nil
}

// Interface guards
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Validator   = (*App)(nil)
)

// observeOutcome sends the CloudWatch metrics of one request: an upload's
// (endpoint "upload") by route, role and result, an API request's by route,
// endpoint and result (its status when 400 or more).
func (a *App) observeOutcome(o metrics.Outcome) {
	ms := float64(o.Duration) / float64(time.Millisecond)
	r := cwexport.Dim(cwexport.DimRoute, o.Route)
	if o.Endpoint != "upload" {
		result := "ok"
		if o.Status >= 400 {
			result = strconv.Itoa(o.Status)
		}
		re, e := cwexport.Dim(cwexport.DimResult, result), types.Dimension{Name: aws.String("Endpoint"), Value: aws.String(o.Endpoint)}
		a.observe(cwexport.MetricAPIRequestCount, types.StandardUnitCount, 1, r, e, re)
		a.observe(cwexport.MetricAPIRequestDuration, types.StandardUnitMilliseconds, ms, r, e, re)
		return
	}
	re := cwexport.Dim(cwexport.DimResult, o.MetricResult())
	a.observe(cwexport.MetricAPIRequestCount, types.StandardUnitCount, 1, r, re)
	a.observe(cwexport.MetricAPIRequestDuration, types.StandardUnitMilliseconds, ms, r, re)
	a.observeUpload(o)
}

// observeUpload sends the CloudWatch metrics of one upload by route, role
// and result; its duration and speed only when o.Duration is known.
func (a *App) observeUpload(o metrics.Outcome) {
	r, ro := cwexport.Dim(cwexport.DimRoute, o.Route), cwexport.Dim(cwexport.DimRole, cmp.Or(o.Role, "anonymous"))
	re := cwexport.Dim(cwexport.DimResult, o.MetricResult())
	a.observe(cwexport.MetricUploadCount, types.StandardUnitCount, 1, r, ro, re)
	if o.MetricResult() != metrics.ResultOK {
		if o.Status == 403 {
			a.observe(cwexport.MetricAccessDeniedCount, types.StandardUnitCount, 1, r, ro)
		}
		return
	}
	if o.Duration > 0 {
		a.observe(cwexport.MetricUploadDuration, types.StandardUnitMilliseconds, float64(o.Duration)/float64(time.Millisecond), r, ro)
	}
	if o.Duration > 0 && o.Bytes > 0 {
		a.observe(cwexport.MetricUploadSpeed, types.StandardUnitBytesSecond, float64(o.Bytes)/o.Duration.Seconds(), r, ro)
	}
	if o.Files > 0 {
		a.observe(cwexport.MetricFileSize, types.StandardUnitBytes, float64(o.Bytes)/float64(o.Files), r, ro)
	}
	if o.Parts > 0 {
		a.observe(cwexport.MetricMultipartPartCount, types.StandardUnitCount, float64(o.Parts), r, ro)
	}
}

// AccessDenied sends the CloudWatch metric of one request the file API
// refused for the user's role.
func (a *App) AccessDenied(route string) {
	a.observe(cwexport.MetricAccessDeniedCount, types.StandardUnitCount, 1, cwexport.Dim(cwexport.DimRoute, route))
}

// AuthFailed sends the CloudWatch metric of one rejected token.
func (a *App) AuthFailed(reason string) {
	a.observe(cwexport.MetricAuthFailureCount, types.StandardUnitCount, 1, cwexport.Dim(cwexport.DimReason, reason))
}

// Recorder records each request's outcome once, from one value: in
// Prometheus (internal/metrics), in CloudWatch/EMF (the app, when
// configured) and, for audited actions, in the audit log.
type Recorder struct {
	Metrics *metrics.Metrics
	CW      *App        // nil unless upload_gateway_metrics is configured
	Audit   *zap.Logger // the handler's "audit" logger
}

// NewRecorder returns the recorder of a handler provisioned in ctx: its
// request metrics in ctx's registry, the upload_gateway_metrics app when it
// is configured, and logger's "audit" logger.
func NewRecorder(ctx caddy.Context, logger *zap.Logger) (*Recorder, error) {
	m, err := metrics.New(ctx.GetMetricsRegistry())
	if err != nil {
		return nil, fmt.Errorf("registering metrics: %v", err)
	}
	cw, err := Sink(ctx)
	if err != nil {
		return nil, err
	}
	return &Recorder{Metrics: m, CW: cw, Audit: logger.Named("audit")}, nil
}

// Upload counts an upload in flight (of bytesHint announced bytes) and
// returns the func that records its outcome, to be called once.
func (rc *Recorder) Upload(bytesHint int64) func(r *http.Request, o metrics.Outcome) {
	done := rc.Metrics.UploadStarted(bytesHint)
	return func(r *http.Request, o metrics.Outcome) {
		done(o.Role, o.MetricResult(), o.Bytes, o.Parts)
		rc.Record(r, o)
	}
}

// Uploaded records a request that finished an upload whose bytes went
// straight to S3 with presigned URLs (a multipart complete, a confirm): the
// request itself as [Recorder.Record] does (o.Duration is the request's),
// and the upload in the same upload metrics as streamed ones, with one
// audit line, action "upload", for both. upload is the upload's duration,
// 0 when unknown.
func (rc *Recorder) Uploaded(r *http.Request, o metrics.Outcome, upload time.Duration) {
	rc.Metrics.ObserveRequest(o.Route, o.Endpoint, o.Status, o.Duration)
	rc.Metrics.UploadFinished(o.Role, o.MetricResult(), o.Bytes, o.Parts, upload)
	rc.CW.observeOutcome(o)
	up := o
	up.Action, up.Duration = "upload", upload
	rc.CW.observeUpload(up)
	shared.Audit(rc.Audit, r, up)
}

// AuthRefused records a request whose token the authentication check
// refused, answered with status for reason: an audit line (action
// "authenticate", result "failed" when the check itself failed with a 5xx,
// else "denied") and, for a denial, the auth failure metrics.
func (rc *Recorder) AuthRefused(r *http.Request, status int, reason string) {
	result := metrics.ResultDenied
	if status >= 500 {
		result = metrics.ResultFailed
	} else {
		rc.Metrics.AuthFailure(reason)
		rc.CW.AuthFailed(reason)
	}
	shared.Audit(rc.Audit, r, shared.AuditEvent{Action: "authenticate", Result: result, Status: status, Reason: reason})
}

// Record records the outcome of one request. An upload's (endpoint
// "upload") also counts its denial, its aborted multipart upload and its
// rolled-back objects.
func (rc *Recorder) Record(r *http.Request, o metrics.Outcome) {
	rc.Metrics.ObserveRequest(o.Route, o.Endpoint, o.Status, o.Duration)
	if o.Endpoint == "upload" {
		if o.Result == metrics.ResultDenied {
			rc.Metrics.AccessDenied(o.Action)
		}
		if o.Aborted {
			rc.Metrics.Aborted(o.Reason)
		}
		if o.RolledBack > 0 {
			rc.Metrics.RolledBack(o.RolledBack)
		}
	}
	rc.CW.observeOutcome(o)
	if o.Action != "" {
		shared.Audit(rc.Audit, r, o)
	}
}
