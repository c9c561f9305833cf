package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// rssResult is one row of the peak RSS table.
type rssResult struct {
	size           int64
	mbps           float64
	baseline, peak int64 // VmRSS after warm-up, VmHWM after the upload
}

// benchRSS uploads one body of each size through a freshly started gateway
// (one raw PUT over HTTPS) and reads the process's baseline and peak RSS.
// With a target, the gateway writes to it instead of the test SeaweedFS.
func benchRSS(env *harness.Env, target *s3Target, sizeList string, partSize int64, concurrency int) ([]rssResult, error) {
	sizes, err := parseSizes(sizeList)
	if err != nil {
		return nil, err
	}
	prefix := fmt.Sprintf("bench-rss/%d/", time.Now().UnixNano())
	defer env.DeletePrefix(context.Background(), prefix)

	var out []rssResult
	for _, size := range sizes {
		r, err := rssOnce(env, target, prefix, size, partSize, concurrency)
		// Free the server's disk before the next (larger) size.
		reclaim(env, prefix)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", humanize.IBytes(uint64(size)), err)
		}
		out = append(out, r)
	}
	return out, nil
}

func rssOnce(env *harness.Env, target *s3Target, prefix string, size, partSize int64, concurrency int) (rssResult, error) {
	var gwEnv []string
	if target != nil {
		gwEnv = target.gwEnv
	}
	gw, err := env.StartGateway(harness.GatewayConfig{Site: gatewayBlock(prefix, partSize, concurrency), Env: gwEnv})
	if err != nil {
		return rssResult{}, err
	}
	defer gw.Stop()
	if err := warmUp(gw); err != nil {
		return rssResult{}, err
	}
	baseline, err := gw.RSS()
	if err != nil {
		return rssResult{}, err
	}
	mbps, err := measure(size, func(body io.Reader) error { return putThroughGateway(gw.Client, gw.URL, size, body) })
	if err != nil {
		return rssResult{}, fmt.Errorf("upload: %v\n%s", err, gw.Logs())
	}
	peak, err := gw.PeakRSS()
	if err != nil {
		return rssResult{}, err
	}
	return rssResult{size: size, mbps: mbps, baseline: baseline, peak: peak}, nil
}

// warmUp sends one small upload, so that the baseline RSS includes TLS, the
// S3 client and the upload code paths.
func warmUp(gw *harness.Gateway) error {
	req, _ := http.NewRequest(http.MethodPut, gw.URL+"/warm.bin", bytes.NewReader(make([]byte, 1024)))
	resp, err := gw.Client.Do(req)
	if err != nil {
		return fmt.Errorf("warm-up: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("warm-up: status %d", resp.StatusCode)
	}
	return nil
}

func printRSS(rows []rssResult, s3 *s3Target, partSize int64, concurrency int) {
	bound := partSize * int64(concurrency+1)
	target := bound + 16<<20
	to := "the test SeaweedFS"
	if s3 != nil {
		to = s3.name
	}
	fmt.Printf("\nPeak RSS of one raw PUT over HTTPS to %s, a fresh gateway per size, part size %s, concurrency %d (part buffer bound %d MiB)\n\n",
		to, humanize.IBytes(uint64(partSize)), concurrency, bound>>20)
	fmt.Println("| size | MB/s | baseline RSS (VmRSS after warm-up) | peak RSS (VmHWM) | peak − baseline | part buffer bound | target: bound + 16 MiB |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		met := "met"
		if r.peak-r.baseline > target {
			met = "NOT met"
		}
		fmt.Printf("| %s | %.0f | %d MiB | %d MiB | %d MiB | %d MiB | %d MiB: %s |\n", humanize.IBytes(uint64(r.size)), r.mbps,
			r.baseline>>20, r.peak>>20, (r.peak-r.baseline)>>20, bound>>20, target>>20, met)
	}
}
