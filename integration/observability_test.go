//go:build integration

package integration_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// cloudWatchStandIn decodes what the AWS SDK really sends for
// PutMetricData (Smithy RPC v2 CBOR, gzip-compressed when large).
type cloudWatchStandIn struct {
	mu      sync.Mutex
	datums  []cwDatum
	gzipped int
	srv     *httptest.Server
}

type cwDatum struct {
	MetricName      string
	Unit            string
	Dimensions      []struct{ Name, Value string }
	Values          []float64
	Counts          []float64
	StatisticValues *struct{ SampleCount, Sum, Minimum, Maximum float64 }
}

func newCloudWatchStandIn(t *testing.T) *cloudWatchStandIn {
	c := &cloudWatchStandIn{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			body = zr
			c.mu.Lock()
			c.gzipped++
			c.mu.Unlock()
		}
		raw, _ := io.ReadAll(body)
		if !strings.HasSuffix(r.URL.Path, "/operation/PutMetricData") || r.Header.Get("Smithy-Protocol") != "rpc-v2-cbor" {
			t.Errorf("unexpected request %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Smithy-Protocol"))
		}
		var in struct {
			Namespace  string
			MetricData []cwDatum
		}
		if err := cbor.Unmarshal(raw, &in); err != nil {
			t.Errorf("decoding PutMetricData: %v", err)
			http.Error(w, err.Error(), 400)
			return
		}
		if in.Namespace != "UploadGatewayIT" {
			t.Errorf("namespace %q", in.Namespace)
		}
		c.mu.Lock()
		c.datums = append(c.datums, in.MetricData...)
		c.mu.Unlock()
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
		w.Header().Set("Content-Type", "application/cbor")
		b, _ := cbor.Marshal(map[string]any{})
		_, _ = w.Write(b)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// find returns the datums named name.
func (c *cloudWatchStandIn) find(name string) []cwDatum {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []cwDatum
	for _, d := range c.datums {
		if d.MetricName == name {
			out = append(out, d)
		}
	}
	return out
}

func dims(d cwDatum) map[string]string {
	m := map[string]string{}
	for _, x := range d.Dimensions {
		m[x.Name] = x.Value
	}
	return m
}

// An operator watches the gateway: Prometheus series on /metrics, the same
// numbers in CloudWatch, an audit line per upload, and a config reload that
// keeps it all going.
func TestMetricsCloudWatchAuditAndReload(t *testing.T) {
	prefix := testPrefix(t)
	cw := newCloudWatchStandIn(t)
	emf := filepath.Join(t.TempDir(), "emf.log")
	gw, err := env.StartGateway(harness.GatewayConfig{
		Globals: fmt.Sprintf(`upload_gateway_metrics {
		cloudwatch {
			namespace UploadGatewayIT
			region us-east-1
			endpoint %s
			interval 1s
			access_key_id test
			secret_access_key test
		}
		emf_file %s
	}`, cw.srv.URL, emf),
		Site: gatewayOpts{prefix: prefix, lines: []string{"route it-uploads", "max_file_size 1MiB"}}.block(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Stop()

	put := func(name string, n int) int {
		req, _ := http.NewRequest(http.MethodPut, gw.URL+"/"+name, bytes.NewReader(bytes.Repeat([]byte("a"), n)))
		resp, err := gw.Client.Do(req)
		if err != nil {
			t.Error(err) // also called from subtests: no FailNow on this t
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 3 {
		if s := put(fmt.Sprintf("ok-%d.txt", i), 1000); s != 201 {
			t.Fatalf("upload: %d", s)
		}
	}
	if s := put("too-big.bin", 2<<20); s != 413 {
		t.Fatalf("oversized upload: %d", s)
	}

	t.Run("Prometheus", func(t *testing.T) {
		for series, want := range map[string]float64{
			`upload_gateway_uploads_total{result="ok",role="anonymous"}`:                       3,
			`upload_gateway_uploads_total{result="rejected",role="anonymous"}`:                 1,
			`upload_gateway_upload_bytes_total{role="anonymous"}`:                              3000,
			`upload_gateway_requests_total{endpoint="upload",route="it-uploads",status="201"}`: 3,
			`upload_gateway_requests_total{endpoint="upload",route="it-uploads",status="413"}`: 1,
			`upload_gateway_file_size_bytes_count`:                                             3,
			`upload_gateway_uploads_in_flight`:                                                 0,
			`upload_gateway_s3_requests_total{operation="PutObject",result="ok"}`:              3,
		} {
			if got := scrapeMetric(t, gw, series); got != want {
				t.Errorf("%s = %v, want %v", series, got, want)
			}
		}
	})

	t.Run("CloudWatch", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		for len(cw.find("UploadCount")) == 0 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		var ok, rejected float64
		for _, d := range cw.find("UploadCount") {
			total := 0.0
			for i, v := range d.Values {
				c := 1.0
				if i < len(d.Counts) {
					c = d.Counts[i]
				}
				total += v * c
			}
			if d.StatisticValues != nil {
				total += d.StatisticValues.Sum
			}
			switch dims(d)["Result"] {
			case "ok":
				ok += total
			case "rejected":
				rejected += total
			}
			if d.Unit != "Count" || dims(d)["Route"] != "it-uploads" || dims(d)["Role"] != "anonymous" {
				t.Errorf("UploadCount datum %+v", d)
			}
		}
		if ok != 3 || rejected != 1 {
			t.Errorf("UploadCount ok=%v rejected=%v, want 3 and 1", ok, rejected)
		}
		for name, unit := range map[string]string{"UploadDuration": "Milliseconds", "UploadSpeed": "Bytes/Second", "FileSize": "Bytes", "ApiRequestDuration": "Milliseconds", "ApiRequestCount": "Count"} {
			ds := cw.find(name)
			if len(ds) == 0 || ds[0].Unit != unit {
				t.Errorf("%s: %+v, want unit %s", name, ds, unit)
			}
		}
	})

	t.Run("EMF file", func(t *testing.T) {
		b, err := os.ReadFile(emf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"UploadCount"`)) || !bytes.Contains(b, []byte(`"CloudWatchMetrics"`)) {
			t.Errorf("EMF file lacks UploadCount: %.300s", b)
		}
	})

	t.Run("audit log", func(t *testing.T) {
		var uploads []map[string]any
		sc := bufio.NewScanner(strings.NewReader(gw.Logs()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["logger"] == "http.handlers.upload_gateway.audit" {
				uploads = append(uploads, line)
			}
		}
		if len(uploads) != 4 {
			t.Fatalf("%d audit lines, want 4", len(uploads))
		}
		for _, l := range uploads {
			for _, f := range []string{"ts", "request_id", "client_ip", "action", "result", "duration"} {
				if _, ok := l[f]; !ok {
					t.Errorf("audit line lacks %s: %v", f, l)
				}
			}
		}
		last := uploads[len(uploads)-1]
		if last["result"] != "rejected" || last["reason"] != "FILE_TOO_LARGE" || uploads[0]["size"] != 1000.0 || uploads[0]["key"] == "" {
			t.Errorf("audit lines: first %v, last %v", uploads[0], last)
		}
	})

	t.Run("a config reload keeps metrics serving", func(t *testing.T) {
		resp, err := http.Get(gw.AdminURL + "/config/")
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		req, _ := http.NewRequest(http.MethodPost, gw.AdminURL+"/load", bytes.NewReader(cfg))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Cache-Control", "must-revalidate") // force a reload of the same config
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("reload: %d %s", resp.StatusCode, body)
		}
		// A reload stops the old server, which closes the client's idle
		// keep-alive connections; a PUT sent on one of them as it closes
		// fails with EOF and is not retried (PUT with a body is not
		// retried by net/http), so start from fresh connections.
		// A new connection can still be reset while the old server lets
		// go of the shared listener: a client retries that, so does this.
		gw.Client.CloseIdleConnections()
		status := 0
		for attempt := 1; attempt <= 3 && status == 0; attempt++ {
			req, _ := http.NewRequest(http.MethodPut, gw.URL+"/after-reload.txt", strings.NewReader("0123456789"))
			resp, err := gw.Client.Do(req)
			if err != nil {
				t.Logf("attempt %d: %v", attempt, err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			resp.Body.Close()
			status = resp.StatusCode
		}
		if status != 201 {
			t.Fatalf("upload after reload: %d", status)
		}
		if got := scrapeMetric(t, gw, `upload_gateway_uploads_total{result="ok",role="anonymous"}`); got < 1 {
			t.Errorf("after the reload uploads_total = %v", got)
		}
	})
}
