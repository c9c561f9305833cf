// Command bench measures streaming throughput through the gateway next to a
// direct aws-sdk-go-v2 upload of the same bytes to the same S3 server, in one
// run, and the gateway's peak RSS. It prints a Markdown table.
//
// It needs the test servers (integration/testenv/up.sh) and their env file;
// ./scripts/bench starts them and runs it.
//
//	go run ./integration/bench -sizes 256MiB,1GiB -runs 3
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/dustin/go-humanize"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

func main() {
	sizes := flag.String("sizes", "256MiB,1GiB", "comma-separated body sizes")
	runs := flag.Int("runs", 3, "runs per measurement (the median is reported)")
	partSize := flag.String("part-size", "16MiB", "part size for both the gateway and the SDK")
	concurrency := flag.Int("concurrency", 4, "parts in flight for both")
	flag.StringVar(&pprofPath, "pprof", "", "write a CPU profile of the gateway during the first HTTPS upload to this file")
	presignFor := flag.Duration("presign", 10*time.Second, "how long to load the presign endpoint (0 skips it)")
	presignConc := flag.Int("presign-clients", 4, "concurrent clients for the presign load")
	flag.Parse()
	if *presignFor > 0 {
		env, err := harness.LoadEnv()
		if err == nil {
			var rows []presignResult
			if rows, err = benchPresign(env, *presignFor, *presignConc); err == nil {
				printPresign(rows, *presignFor)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: presign:", err)
			os.Exit(1)
		}
	}
	if *sizes == "" {
		return
	}
	if err := run(*sizes, *runs, *partSize, *concurrency); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

var pprofPath string

// profile captures a CPU profile of the gateway through its admin endpoint.
func profile(adminURL string, seconds int) {
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", adminURL, seconds))
	if err != nil {
		fmt.Fprintln(os.Stderr, "pprof:", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(pprofPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pprof:", err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
	fmt.Fprintln(os.Stderr, "wrote gateway CPU profile to", pprofPath)
}

type result struct {
	label   string
	size    int64
	mbps    float64
	peakRSS int64
}

func run(sizeList string, runs int, partSizeStr string, concurrency int) error {
	env, err := harness.LoadEnv()
	if err != nil {
		return err
	}
	ps, err := humanize.ParseBytes(partSizeStr)
	if err != nil {
		return err
	}
	partSize := int64(ps)
	prefix := fmt.Sprintf("bench/%d/", time.Now().UnixNano())
	defer env.DeletePrefix(context.Background(), prefix)

	block := fmt.Sprintf(`upload_gateway {
		bucket {env.UGW_S3_BUCKET}
		region {env.UGW_S3_REGION}
		endpoint {env.UGW_S3_ENDPOINT}
		path_style
		access_key_id {env.UGW_GATEWAY_ACCESS_KEY}
		secret_access_key {env.UGW_GATEWAY_SECRET_KEY}
		kms_key {env.UGW_KMS_KEY_ID}
		prefix %s
		part_size %d
		concurrency %d
	}`, prefix, partSize, concurrency)

	direct := manager.NewUploader(env.S3At(env.S3Endpoint, env.GatewayAccess, env.GatewaySecret), func(u *manager.Uploader) {
		u.PartSize = partSize
		u.Concurrency = concurrency
	})

	var results []result
	for _, s := range strings.Split(sizeList, ",") {
		n, err := humanize.ParseBytes(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		size := int64(n)

		// A fresh gateway per size, so that its peak RSS belongs to this size.
		gw, err := env.StartGateway(harness.GatewayConfig{Site: block, PlainSite: block})
		if err != nil {
			return err
		}
		var directRuns, httpsRuns, httpRuns []float64
		paths := []struct {
			name   string
			out    *[]float64
			upload func(i int, body io.Reader) error
		}{
			{"direct", &directRuns, func(i int, body io.Reader) error {
				_, err := direct.Upload(context.Background(), &s3.PutObjectInput{
					Bucket:               &env.Bucket,
					Key:                  aws.String(fmt.Sprintf("%sdirect-%d-%d", prefix, size, i)),
					Body:                 body,
					ServerSideEncryption: types.ServerSideEncryptionAwsKms,
					SSEKMSKeyId:          &env.KMSKeyID,
					ChecksumAlgorithm:    types.ChecksumAlgorithmCrc32c,
				})
				return err
			}},
			{"https", &httpsRuns, func(_ int, body io.Reader) error { return putThroughGateway(gw.Client, gw.URL, size, body) }},
			{"http", &httpRuns, func(_ int, body io.Reader) error { return putThroughGateway(gw.Client, gw.HTTPURL, size, body) }},
		}
		for i := range runs {
			// Rotate the order every run, so that no path always goes first
			// (onto a fresher server) or last.
			for j := range paths {
				p := paths[(i+j)%len(paths)]
				if pprofPath != "" && p.name == "https" && i == 0 {
					go profile(gw.AdminURL, 5)
				}
				mbps, err := measure(size, func(body io.Reader) error { return p.upload(i, body) })
				if err != nil {
					logs := gw.Logs()
					gw.Stop()
					return fmt.Errorf("%s upload: %v\n%s", p.name, err, logs)
				}
				*p.out = append(*p.out, mbps)
			}
		}
		peak, _ := gw.PeakRSS()
		gw.Stop()
		results = append(results,
			result{"direct aws-sdk-go-v2 (manager.Uploader)", size, median(directRuns), 0},
			result{"gateway, HTTPS (tls internal)", size, median(httpsRuns), peak},
			result{"gateway, plain HTTP", size, median(httpRuns), peak},
		)
	}
	printTable(results, runs, partSize, concurrency)
	return nil
}

func putThroughGateway(client *http.Client, base string, size int64, body io.Reader) error {
	req, err := http.NewRequest(http.MethodPut, base+"/bench.bin", body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

// measure runs upload with a generated body of size bytes and returns MB/s.
func measure(size int64, upload func(io.Reader) error) (float64, error) {
	body := harness.NewRandomReader(uint64(time.Now().UnixNano()), size)
	start := time.Now()
	if err := upload(body); err != nil {
		return 0, err
	}
	return float64(size) / 1e6 / time.Since(start).Seconds(), nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func printTable(results []result, runs int, partSize int64, concurrency int) {
	host, _ := os.Hostname()
	fmt.Printf("\nStreaming upload to SeaweedFS with SSE-KMS, part size %s, concurrency %d, median of %d runs\n",
		humanize.IBytes(uint64(partSize)), concurrency, runs)
	fmt.Printf("machine: %s, %d CPUs, %s/%s, %s; date %s\n\n", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH,
		runtime.Version(), time.Now().UTC().Format("2006-01-02"))
	fmt.Println("| size | path | MB/s | ratio to direct | gateway peak RSS |")
	fmt.Println("|---|---|---:|---:|---:|")
	var direct float64
	for _, r := range results {
		if r.peakRSS == 0 {
			direct = r.mbps
		}
		ratio, rss := "1.00", "–"
		if r.peakRSS > 0 {
			ratio = fmt.Sprintf("%.2f", r.mbps/direct)
			rss = fmt.Sprintf("%d MiB", r.peakRSS>>20)
		}
		fmt.Printf("| %s | %s | %.0f | %s | %s |\n", humanize.IBytes(uint64(r.size)), r.label, r.mbps, ratio, rss)
	}
	fmt.Printf("\nmemory bound per upload: part size × (concurrency+1) = %d MiB\n", partSize*int64(concurrency+1)>>20)
}
