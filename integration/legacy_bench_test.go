//go:build integration

package integration_test

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The form-upload row of BENCHMARKS.md: a 100 MiB form (one file and a
// title) posted to the legacy PHP app through the gateway in pass mode
// (stored in S3 with SSE-KMS, the app gets the fields) against the same
// form sent to the same app by a plain reverse_proxy (PHP writes the file
// to its temporary directory). Runs only with UGW_BENCH_FORMS=1 (runs:
// UGW_BENCH_FORMS_RUNS, default 3); the numbers are logged.
func TestBenchFormPassModeVsReverseProxy(t *testing.T) {
	if os.Getenv("UGW_BENCH_FORMS") != "1" {
		t.Skip("set UGW_BENCH_FORMS=1 to run the form benchmark")
	}
	runs := 3
	if n, err := fmt.Sscan(os.Getenv("UGW_BENCH_FORMS_RUNS"), &runs); n != 1 || err != nil {
		runs = 3
	}
	const size = 100 << 20
	prefix := testPrefix(t)
	app := startApp(t, appLegacyPHP)
	// The app's session check is not part of the measurement: both routes
	// skip forward_auth.
	gw := startGateway(t, fmt.Sprintf(`route /gw/* {
		uri strip_prefix /gw
		%s
		reverse_proxy %s
	}
	route /rp/* {
		uri strip_prefix /rp
		reverse_proxy %s
	}`, gatewayOpts{prefix: prefix, lines: []string{"output pass", "max_file_size 200MiB", "max_request_size 256MiB"}}.block(), app, app))

	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("title", "benchmark")
	fw, _ := mw.CreateFormFile("attachment", "big.bin")
	_, _ = fw.Write(fileBytes(t, "", 99, size))
	_ = mw.Close()
	body := form.Bytes()

	post := func(path string) float64 {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, gw.URL+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", mw.FormDataContentType())
		start := time.Now()
		resp, err := gw.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		elapsed := time.Since(start)
		want := "0 file bodies"
		if strings.HasPrefix(path, "/rp") {
			want = "1 file bodies"
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), want) {
			t.Fatalf("%s: %d %.300s", path, resp.StatusCode, page)
		}
		return float64(len(body)) / 1e6 / elapsed.Seconds()
	}
	var viaGateway, viaProxy []float64
	for i := range runs {
		// Alternate which goes first.
		if i%2 == 0 {
			viaGateway = append(viaGateway, post("/gw/attachments/upload"))
			viaProxy = append(viaProxy, post("/rp/attachments/upload"))
		} else {
			viaProxy = append(viaProxy, post("/rp/attachments/upload"))
			viaGateway = append(viaGateway, post("/gw/attachments/upload"))
		}
	}
	median := func(v []float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[len(s)/2]
	}
	g, p := median(viaGateway), median(viaProxy)
	t.Logf("100 MiB form, HTTPS, median of %d: gateway pass mode → S3 + PHP %.0f MB/s %v; reverse_proxy → PHP %.0f MB/s %v; ratio %.2f",
		runs, g, round(viaGateway), p, round(viaProxy), g/p)
}

func round(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x + 0.5)
	}
	return out
}
