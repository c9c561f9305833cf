// Command bench measures, in one run, and prints as Markdown tables:
//
//   - JWT validation: testing.Benchmark of jwtauth's Verify in-process, with
//     and without the signature cache (-jwt);
//   - presign requests/s through the gateway (-presign);
//   - Uppy's Companion routes (params, create multipart, sign part) on the
//     gateway next to @uppy/companion from npm on the same SeaweedFS:
//     req/s and p50/p99 (-companion, -companion-clients);
//   - a multipart upload from headless Chromium with Uppy's own
//     @uppy/aws-s3 through the gateway's Companion routes next to the same
//     upload by aws-sdk-go-v2 straight to S3 (-browser-size,
//     -browser-part-size, -browser-concurrency, -browser-runs);
//   - tus uploads of one large body in PATCHes of each chunk size through
//     the gateway's upload_tus next to its streamed upload of the same
//     size and to tusd with its s3store (integration/bench/tusd) on the
//     same SeaweedFS: seconds, ratios, server CPU per GiB and peak RSS
//     (-tus-size, -tus-chunks, -tus-runs, -tus-part-size);
//   - streaming throughput through the gateway (HTTPS and plain HTTP) next to
//     a direct aws-sdk-go-v2 upload of the same bytes to the same S3 server,
//     and next to the same SDK upload through Caddy's plain reverse_proxy in
//     front of S3 (-sizes, -proxy), with peak RSS and CPU per GiB of every
//     process; once against SeaweedFS and once against s3sink, a minimal
//     in-memory S3 that checks checksums and stores nothing, so that the
//     gateway's own cost is not hidden behind the S3 server's (-targets);
//   - peak RSS of single large uploads, a fresh gateway per size (-rss-sizes);
//   - many concurrent uploads at once: throughput, errors, p50/p99, peak RSS
//     against the configured memory_limit (-concurrent, -concurrent-size);
//   - scale-out: aggregate upload throughput and presign requests/s of 1, 2
//     and 3 instances behind a Caddy load balancer (-instances,
//     -instances-for, -instances-clients, -instances-size);
//   - under attack: throughput and p50/p99 of normal uploads while 0, 2 and
//     50 slow-trickle clients are connected, with peak RSS (-attack,
//     -attack-for, -attack-clients, -attack-size).
//
// It needs the test servers (integration/testenv/up.sh) and their env file;
// ./scripts/bench starts them and runs it. An empty -sizes, -rss-sizes or
// -tus-size, or 0 for -presign, -companion or -concurrent, skips that
// table.
//
//	go run ./integration/bench -sizes 256MiB,1GiB -runs 3 -rss-sizes 1GiB,5GiB -concurrent 200
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
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
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"
)

func main() {
	sizes := flag.String("sizes", "256MiB,1GiB", "comma-separated body sizes for the streaming table (empty skips it)")
	runs := flag.Int("runs", 3, "runs per measurement (the median is reported)")
	partSize := flag.String("part-size", "16MiB", "part size for both the gateway and the SDK")
	concurrency := flag.Int("concurrency", 4, "parts in flight for both")
	flag.StringVar(&pprofPath, "pprof", "", "write CPU profiles (5 s) of the gateway during one more, unmeasured default HTTPS and plain-HTTP upload of the first size to this file, the target (seaweedfs, sink) and path (https, http) inserted before the extension")
	presignFor := flag.Duration("presign", 10*time.Second, "how long to load the presign endpoint (0 skips it)")
	presignConc := flag.Int("presign-clients", 4, "concurrent clients for the presign load")
	withProxy := flag.Bool("proxy", true, "add the SDK upload through Caddy's plain reverse_proxy to S3 to the streaming table")
	withSigning := flag.Bool("signing", true, "add rows with the other payload signing: the SDK with UNSIGNED-PAYLOAD, the gateway with payload_signing signed")
	rssSizes := flag.String("rss-sizes", "1GiB,5GiB", "comma-separated sizes of single uploads whose peak RSS is measured, a fresh gateway each (empty or 0 skips)")
	rssTarget := flag.String("rss-target", "seaweedfs", "S3 server of the peak RSS table: seaweedfs or sink")
	concClients := flag.Int("concurrent", 200, "clients uploading one body each at the same time through HTTPS (0 skips)")
	concSize := flag.String("concurrent-size", "8MiB", "body size of each concurrent upload")
	memLimit := flag.String("memory-limit", "1GiB", "the gateway's memory_limit in the concurrent test")
	attack := flag.String("attack", "0,2,50", "comma-separated counts of slow-trickle clients for the under-attack table (empty skips it)")
	attackFor := flag.Duration("attack-for", 15*time.Second, "how long normal uploads run in each under-attack row")
	attackClients := flag.Int("attack-clients", 4, "normal clients uploading one body after another in the under-attack table")
	attackSize := flag.String("attack-size", "8MiB", "body size of the normal uploads in the under-attack table")
	jwtOn := flag.Bool("jwt", true, "benchmark JWT validation in-process (jwtauth.Verifier, RS256)")
	jwtCount := flag.Int("jwt-count", 3, "runs of each JWT benchmark")
	targets := flag.String("targets", "seaweedfs,sink", "S3 servers of the streaming table: seaweedfs (the test SeaweedFS with SSE-KMS), sink (s3sink, in its own process)")
	withSHA := flag.Bool("sha256", true, "add gateway rows with `hash sha256` (the full-object SHA-256) to the streaming table")
	instances := flag.String("instances", "1,2,3", "comma-separated instance counts for the scale-out table (empty skips it)")
	instancesFor := flag.Duration("instances-for", 10*time.Second, "how long each scale-out measurement runs")
	instancesClients := flag.Int("instances-clients", 8, "concurrent clients in the scale-out table")
	instancesSize := flag.String("instances-size", "16MiB", "body size of each upload in the scale-out table")
	companionFor := flag.Duration("companion", 10*time.Second, "how long to load each of Uppy's Companion routes (params, create multipart, sign part) on the gateway and on @uppy/companion (0 skips it)")
	companionConc := flag.Int("companion-clients", 4, "concurrent clients for the Companion routes")
	browserSize := flag.String("browser-size", "200MiB", "size of the multipart upload from headless Chromium with Uppy through the gateway's Companion routes vs aws-sdk-go-v2 directly (empty or 0 skips it)")
	browserPart := flag.String("browser-part-size", "5MiB", "part size of the browser upload and its SDK counterpart (Uppy's default for files up to 48 GiB)")
	browserConc := flag.Int("browser-concurrency", 6, "requests in flight for the browser upload (Uppy's limit option, default 6) and parts in flight for its SDK counterpart")
	browserRuns := flag.Int("browser-runs", 5, "runs of each browser table row (the median is reported)")
	tusSize := flag.String("tus-size", "1GiB", "size of the tus uploads through the gateway's upload_tus, its streamed upload and tusd with s3store (empty or 0 skips the tus table)")
	tusChunks := flag.String("tus-chunks", "8MiB,64MiB", "comma-separated PATCH sizes of the tus uploads (gateway and tusd alike)")
	tusRuns := flag.Int("tus-runs", 3, "runs of each tus table row (the median is reported)")
	tusPart := flag.String("tus-part-size", "8MiB", "upload_tus part_size, and tusd's s3store PreferredPartSize")
	flag.Int64Var(&sinkRate, "sink-rate", 0, "cap the s3sink's reading at this many bytes per second for all requests together (0: as fast as it can), to stand in for a slower S3 server")
	serveSinkMode := flag.Bool("serve-sink", false, "internal: serve the s3sink on a loopback port and print its address")
	flag.Parse()
	if *serveSinkMode {
		serveSink()
		return
	}
	defer harness.RemoveBuild()

	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "bench: %s: %v\n", what, err)
		harness.RemoveBuild()
		os.Exit(1)
	}
	if *jwtOn {
		printJWT(benchJWT(*jwtCount), *jwtCount)
	}
	needEnv := !skipList(*tusSize) || *companionFor > 0 || !skipList(*browserSize) || *presignFor > 0 || *sizes != "" || !skipList(*rssSizes) || *concClients > 0 || *attack != "" || *instances != ""
	if !needEnv {
		return
	}
	env, err := harness.LoadEnv()
	if err != nil {
		fail("environment", err)
	}
	ps, err := humanize.ParseBytes(*partSize)
	if err != nil {
		fail("-part-size", err)
	}
	if *presignFor > 0 {
		rows, err := benchPresign(env, *presignFor, *presignConc)
		if err != nil {
			fail("presign", err)
		}
		printPresign(rows, *presignFor)
	}
	if *companionFor > 0 {
		rows, err := benchCompanion(env, *companionFor, *companionConc)
		if err != nil {
			fail("companion", err)
		}
		printCompanion(rows, *companionFor, *companionConc)
	}
	if !skipList(*browserSize) {
		size, err := humanize.ParseBytes(*browserSize)
		if err != nil {
			fail("-browser-size", err)
		}
		bp, err := humanize.ParseBytes(*browserPart)
		if err != nil {
			fail("-browser-part-size", err)
		}
		rows, err := benchBrowser(env, int64(size), int64(bp), *browserConc, *browserRuns)
		if err != nil {
			fail("browser", err)
		}
		printBrowser(rows, int64(size), int64(bp), *browserConc, *browserRuns)
	}
	if !skipList(*tusSize) {
		size, err := humanize.ParseBytes(*tusSize)
		if err != nil {
			fail("-tus-size", err)
		}
		chunks, err := parseSizes(*tusChunks)
		if err != nil {
			fail("-tus-chunks", err)
		}
		tp, err := humanize.ParseBytes(*tusPart)
		if err != nil {
			fail("-tus-part-size", err)
		}
		rows, err := benchTus(env, int64(size), chunks, *tusRuns, int64(tp), int64(ps), *concurrency)
		if err != nil {
			fail("tus", err)
		}
		printTus(rows, int64(size), *tusRuns, int64(tp), int64(ps), *concurrency)
	}
	if *sizes != "" {
		for _, name := range strings.Split(*targets, ",") {
			var t *s3Target
			switch strings.TrimSpace(name) {
			case "seaweedfs":
				t = seaweedTarget(env)
			case "sink":
				sink, err := startSink()
				if err != nil {
					fail("s3sink", err)
				}
				defer sink.stop()
				t = sink.target()
			default:
				fail("-targets", fmt.Errorf("unknown target %q", name))
			}
			if err := run(env, t, *sizes, *runs, int64(ps), *concurrency, *withProxy, *withSigning, *withSHA); err != nil {
				fail("streaming", err)
			}
		}
	}
	if !skipList(*rssSizes) {
		var target *s3Target
		switch *rssTarget {
		case "seaweedfs":
		case "sink":
			sink, err := startSink()
			if err != nil {
				fail("s3sink", err)
			}
			defer sink.stop()
			target = sink.target()
		default:
			fail("-rss-target", fmt.Errorf("unknown target %q", *rssTarget))
		}
		rows, err := benchRSS(env, target, *rssSizes, int64(ps), *concurrency)
		if err != nil {
			fail("rss", err)
		}
		printRSS(rows, target, int64(ps), *concurrency)
	}
	if *concClients > 0 {
		cs, err := humanize.ParseBytes(*concSize)
		if err != nil {
			fail("-concurrent-size", err)
		}
		ml, err := humanize.ParseBytes(*memLimit)
		if err != nil {
			fail("-memory-limit", err)
		}
		r, err := benchConcurrent(env, *concClients, int64(cs), int64(ps), *concurrency, int64(ml))
		if err != nil {
			fail("concurrent", err)
		}
		printConcurrent(r)
	}
	if *instances != "" {
		var counts []int
		for _, f := range strings.Split(*instances, ",") {
			var n int
			if _, err := fmt.Sscan(strings.TrimSpace(f), &n); err != nil || n < 1 {
				fail("-instances", fmt.Errorf("%q: want a positive count", f))
			}
			counts = append(counts, n)
		}
		is, err := humanize.ParseBytes(*instancesSize)
		if err != nil {
			fail("-instances-size", err)
		}
		sink, err := startSink()
		if err != nil {
			fail("s3sink", err)
		}
		rows, err := benchScaleout(env, sink.target(), counts, *instancesFor, *instancesClients, int64(is), int64(ps), *concurrency)
		sink.stop()
		if err != nil {
			fail("scale-out", err)
		}
		printScaleout(rows, *instancesFor, *instancesClients, int64(is))
	}
	if *attack != "" {
		var counts []int
		for _, f := range strings.Split(*attack, ",") {
			var n int
			if _, err := fmt.Sscan(strings.TrimSpace(f), &n); err != nil {
				fail("-attack", err)
			}
			counts = append(counts, n)
		}
		as, err := humanize.ParseBytes(*attackSize)
		if err != nil {
			fail("-attack-size", err)
		}
		rows, err := benchAttack(env, counts, *attackClients, int64(as), int64(ps), *concurrency, *attackFor)
		if err != nil {
			fail("attack", err)
		}
		printAttack(rows, *attackClients, int64(as), *attackFor)
	}
}

// skipList reports whether a size list flag means "skip": empty or 0.
func skipList(s string) bool {
	s = strings.TrimSpace(s)
	return s == "" || s == "0"
}

// parseSizes parses a comma-separated list of sizes.
func parseSizes(list string) ([]int64, error) {
	var out []int64
	for _, s := range strings.Split(list, ",") {
		n, err := humanize.ParseBytes(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		out = append(out, int64(n))
	}
	return out, nil
}

// gatewayBlock is the upload_gateway block every benchmark gateway uses.
func gatewayBlock(prefix string, partSize int64, concurrency int, extra ...string) string {
	return fmt.Sprintf(`upload_gateway {
		%s
		allow_anonymous
		prefix %s
		part_size %d
		concurrency %d
		%s
	}`, harness.S3Settings(""), prefix, partSize, concurrency, strings.Join(extra, "\n\t\t"))
}

var pprofPath string

// profile captures a CPU profile of the gateway through its admin endpoint
// into pprofPath with name inserted before its extension.
func profile(adminURL string, seconds int, name string) {
	ext := filepath.Ext(pprofPath)
	path := strings.TrimSuffix(pprofPath, ext) + "." + name + ext
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", adminURL, seconds))
	if err != nil {
		fmt.Fprintln(os.Stderr, "pprof:", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pprof:", err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
	fmt.Fprintln(os.Stderr, "wrote gateway CPU profile to", path)
}

// result is one row of the streaming table.
type result struct {
	label   string
	size    int64
	mbps    float64
	peakRSS int64  // of the process on the path; 0 for direct
	group   string // "direct", "gateway" or "proxy"
	scheme  string // "HTTPS" or "HTTP" for the gateway and proxy rows
	signing string // how S3 got the bodies: "signed", "unsigned" or "trailer"
	cpu     cpuUse // median CPU per GiB of each process on the path
}

// streamPath is one way of getting the bytes into S3.
type streamPath struct {
	result        // label, group, scheme and signing; filled in after the runs
	name   string // for errors and -pprof
	upload func(i int, body io.Reader) error
	proc   *harness.Gateway // the gateway or proxy on the path, nil for direct
	runs   []float64
	cpu    []cpuUse
}

func run(env *harness.Env, target *s3Target, sizeList string, runs int, partSize int64, concurrency int, withProxy, withSigning, withSHA bool) error {
	sizes, err := parseSizes(sizeList)
	if err != nil {
		return err
	}
	prefix := fmt.Sprintf("bench/%d/", time.Now().UnixNano())
	if target.reclaim != nil {
		defer target.reclaim(prefix)
	}
	// The default gateway, under /signed/ one that signs every part's
	// SHA-256 as the SDK does over plain HTTP, and under /sha256/ one that
	// also computes the full-object SHA-256 (hash sha256).
	site := fmt.Sprintf("handle /signed/* {\n\t%s\n}\nhandle {\n\t%s\n}",
		gatewayBlock(prefix, partSize, concurrency, "payload_signing signed"), gatewayBlock(prefix, partSize, concurrency))
	if withSHA {
		site = fmt.Sprintf("handle /sha256/* {\n\t%s\n}\n%s", gatewayBlock(prefix, partSize, concurrency, "hash sha256"), site)
	}

	tuneUploader := func(u *manager.Uploader) {
		u.PartSize = partSize
		u.Concurrency = concurrency
	}
	directClient := env.S3At(target.endpoint, env.GatewayAccess, env.GatewaySecret)
	direct := manager.NewUploader(directClient, tuneUploader)
	directUnsigned := manager.NewUploader(s3.New(directClient.Options(), func(o *s3.Options) {
		o.APIOptions = append(slices.Clone(o.APIOptions), s3stream.UnsignedPayload)
	}), tuneUploader)
	sdkPut := func(up *manager.Uploader, key string, body io.Reader) error {
		_, err := up.Upload(context.Background(), &s3.PutObjectInput{
			Bucket:               &env.Bucket,
			Key:                  aws.String(key),
			Body:                 body,
			ServerSideEncryption: types.ServerSideEncryptionAwsKms,
			SSEKMSKeyId:          &env.KMSKeyID,
			ChecksumAlgorithm:    types.ChecksumAlgorithmCrc32c,
		})
		return err
	}

	var results []result
	for _, size := range sizes {
		// A fresh gateway (and proxy) per size, so that peak RSS belongs to this size.
		gw, err := env.StartGateway(harness.GatewayConfig{Site: site, PlainSite: site, Env: target.gwEnv})
		if err != nil {
			return err
		}
		var proxy *harness.Gateway
		if withProxy {
			if proxy, err = startProxy(env, target.endpoint); err != nil {
				gw.Stop()
				return err
			}
		}
		stop := func() {
			gw.Stop()
			if proxy != nil {
				proxy.Stop()
			}
		}
		sdkPath := func(name, label string, up *manager.Uploader, via *harness.Gateway, group, scheme, signing string) *streamPath {
			return &streamPath{name: name, proc: via, result: result{label: label, group: group, scheme: scheme, signing: signing},
				upload: func(i int, body io.Reader) error {
					return sdkPut(up, fmt.Sprintf("%s%s-%d-%d", prefix, name, size, i), body)
				}}
		}
		gwPath := func(name, label, base, scheme, signing string) *streamPath {
			return &streamPath{name: name, proc: gw, result: result{label: label, group: "gateway", scheme: scheme, signing: signing},
				upload: func(_ int, body io.Reader) error { return putThroughGateway(gw.Client, base, size, body) }}
		}
		paths := []*streamPath{
			sdkPath("direct", "direct aws-sdk-go-v2 (manager.Uploader, SDK defaults)", direct, nil, "direct", "", "signed"),
			gwPath("https", "gateway, HTTPS (tls internal)", gw.URL, "HTTPS", "unsigned"),
			gwPath("http", "gateway, plain HTTP", gw.HTTPURL, "HTTP", "unsigned"),
		}
		if withSHA {
			paths = append(paths,
				gwPath("https-sha256", "gateway, HTTPS, hash sha256", gw.URL+"/sha256", "HTTPS", "unsigned"),
				gwPath("http-sha256", "gateway, plain HTTP, hash sha256", gw.HTTPURL+"/sha256", "HTTP", "unsigned"))
		}
		if withSigning {
			paths = append(paths,
				sdkPath("direct-unsigned", "direct aws-sdk-go-v2, UNSIGNED-PAYLOAD", directUnsigned, nil, "direct", "", "unsigned"),
				gwPath("https-signed", "gateway, HTTPS, payload_signing signed", gw.URL+"/signed", "HTTPS", "signed"),
				gwPath("http-signed", "gateway, plain HTTP, payload_signing signed", gw.HTTPURL+"/signed", "HTTP", "signed"))
		}
		if withProxy {
			paths = append(paths,
				sdkPath("proxy-https", "aws-sdk-go-v2 via Caddy reverse_proxy, HTTPS",
					manager.NewUploader(proxyS3Client(env, proxy.URL, proxy), tuneUploader), proxy, "proxy", "HTTPS", "trailer"),
				sdkPath("proxy-http", "aws-sdk-go-v2 via Caddy reverse_proxy, plain HTTP",
					manager.NewUploader(proxyS3Client(env, proxy.HTTPURL, nil), tuneUploader), proxy, "proxy", "HTTP", "signed"))
		}
		for i := range runs {
			// Rotate the order every run, so that no path always goes first
			// (onto a fresher server) or last.
			for j := range paths {
				p := paths[(i+j)%len(paths)]
				meter := cpuMeter{s3: target.pids}
				if p.proc != nil {
					meter.middle = p.proc.PID()
				}
				before := meter.snapshot()
				mbps, err := measure(size, func(body io.Reader) error { return p.upload(i, body) })
				if err != nil {
					logs := ""
					if p.proc != nil {
						logs = p.proc.Logs()
					}
					stop()
					return fmt.Errorf("%s upload: %v\n%s", p.name, err, logs)
				}
				p.cpu = append(p.cpu, meter.since(before, size))
				p.runs = append(p.runs, mbps)
			}
			if target.reclaim != nil {
				target.reclaim(prefix)
			}
		}
		// Profiles come from one more, unmeasured upload of each default
		// path: profiling costs the gateway CPU (and a profile outlasts the
		// upload), which would count in the rows. One at a time: two at
		// once fail ("cpu profiling already in use").
		if pprofPath != "" && size == sizes[0] {
			for _, p := range paths {
				if p.name != "https" && p.name != "http" {
					continue
				}
				done := make(chan struct{})
				go func() { profile(gw.AdminURL, 5, target.name+"-"+p.name); close(done) }()
				if _, err := measure(size, func(body io.Reader) error { return p.upload(runs, body) }); err != nil {
					fmt.Fprintf(os.Stderr, "pprof: %s upload: %v\n", p.name, err)
				}
				<-done
			}
			if target.reclaim != nil {
				target.reclaim(prefix)
			}
		}
		for _, p := range paths {
			r := p.result
			r.size, r.mbps, r.cpu = size, median(p.runs), medianCPU(p.cpu)
			if p.proc != nil {
				r.peakRSS, _ = p.proc.PeakRSS()
			}
			results = append(results, r)
		}
		stop() // every round has reclaimed its uploads already
	}
	printTable(target, results, runs, partSize, concurrency, withProxy)
	return nil
}

// reclaim deletes what a round of uploads stored and has SeaweedFS give the
// space back (it only marks deleted data until a volume is vacuumed), so that
// many GiB of runs fit on a small disk.
func reclaim(env *harness.Env, prefix string) {
	env.DeletePrefix(context.Background(), prefix)
	if master := os.Getenv("UGW_WEED_MASTER_URL"); master != "" {
		resp, err := http.Get(master + "/vol/vacuum?garbageThreshold=0.01")
		if err != nil {
			fmt.Fprintln(os.Stderr, "vacuum:", err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
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

func printTable(target *s3Target, results []result, runs int, partSize int64, concurrency int, withProxy bool) {
	host, _ := os.Hostname()
	paths := map[int64]int{}
	for _, r := range results {
		paths[r.size]++
	}
	fmt.Printf("\nStreaming upload to %s, part size %s, concurrency %d, median of %d runs, order of the %d paths rotated every run\n",
		target.title, humanize.IBytes(uint64(partSize)), concurrency, runs, paths[results[0].size])
	fmt.Printf("machine: %s, %d CPUs, %s/%s, %s; date %s\n\n", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH,
		runtime.Version(), time.Now().UTC().Format("2006-01-02"))
	fmt.Println("| size | path | payload to S3 | MB/s | ratio to direct (SDK defaults) | ratio to direct, same payload signing | ratio to reverse_proxy (same scheme) | peak RSS of the Caddy process | CPU s/GiB: client | Caddy | S3 | total | Caddy CPU ratio to reverse_proxy (same scheme) |")
	fmt.Println("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	direct := map[string]float64{}   // size/signing -> MB/s
	proxy := map[string]float64{}    // size/scheme -> MB/s
	proxyCPU := map[string]float64{} // size/scheme -> Caddy CPU s/GiB
	for _, r := range results {
		switch r.group {
		case "direct":
			direct[fmt.Sprint(r.size, r.signing)] = r.mbps
		case "proxy":
			proxy[fmt.Sprint(r.size, r.scheme)] = r.mbps
			proxyCPU[fmt.Sprint(r.size, r.scheme)] = r.cpu.middle
		}
	}
	ratio := func(a, b float64) string {
		if b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	for _, r := range results {
		same, toProxy, rss, middle, cpuRatio := "–", "–", "–", "–", "–"
		if r.group == "gateway" {
			same = ratio(r.mbps, direct[fmt.Sprint(r.size, r.signing)])
			toProxy = ratio(r.mbps, proxy[fmt.Sprint(r.size, r.scheme)])
			cpuRatio = ratio(r.cpu.middle, proxyCPU[fmt.Sprint(r.size, r.scheme)])
		}
		if r.peakRSS > 0 {
			rss = fmt.Sprintf("%d MiB", r.peakRSS>>20)
		}
		if r.group != "direct" {
			middle = fmt.Sprintf("%.2f", r.cpu.middle)
		}
		fmt.Printf("| %s | %s | %s | %.0f | %s | %s | %s | %s | %.2f | %s | %.2f | %.2f | %s |\n", humanize.IBytes(uint64(r.size)), r.label, r.signing, r.mbps,
			ratio(r.mbps, direct[fmt.Sprint(r.size, "signed")]), same, toProxy, rss, r.cpu.client, middle, r.cpu.s3, r.cpu.total(), cpuRatio)
	}
	fmt.Println("\nSystem calls of the Caddy process on the path (median; /proc/<pid>/io: syscr, syscw, rchar, wchar over the upload)")
	fmt.Println()
	fmt.Println("| size | path | reads per MiB | bytes per read | writes per MiB | bytes per write |")
	fmt.Println("|---|---|---:|---:|---:|---:|")
	for _, r := range results {
		if r.group != "direct" && r.cpu.readsPerMiB > 0 {
			fmt.Printf("| %s | %s | %.1f | %.0f | %.1f | %.0f |\n", humanize.IBytes(uint64(r.size)), r.label,
				r.cpu.readsPerMiB, r.cpu.bytesPerRead, r.cpu.writesPerMiB, r.cpu.bytesPerWrite)
		}
	}
	fmt.Printf("\nmemory bound per upload: part size × (concurrency+1) = %d MiB\n", partSize*int64(concurrency+1)>>20)
	fmt.Println("payload to S3: signed = SigV4 over each body's SHA-256 (the SDK's default over plain HTTP); unsigned = UNSIGNED-PAYLOAD, the body covered by its signed CRC32C " +
		"checksum only (the gateway's default, payload_signing auto, for a loopback S3 endpoint as here); trailer = STREAMING-UNSIGNED-PAYLOAD-TRAILER (the SDK over HTTPS).")
	fmt.Println("CPU s/GiB: user+system CPU seconds per GiB uploaded (median) of the load generator (which also generates and hashes the bytes), the Caddy process on the path, and the S3 server (SeaweedFS with local-kms, or the s3sink process), from /proc/<pid>/stat. " +
		"Caddy CPU ratio: the gateway's CPU per GiB over the reverse_proxy's on the same scheme (issue 16's target: at most 1.25 with the default configuration).")
	fmt.Println("gateway rows: default configuration (full-object CRC32C computed while reading, verified by S3 on completion, per-part CRC32C); \"hash sha256\" rows also compute the full-object SHA-256.")
	if withProxy {
		fmt.Println("reverse_proxy rows: the same SDK upload as \"direct\", sent to a second Caddy process whose site is only `reverse_proxy <S3 host:port>` (Host kept, so SigV4 validates); its peak RSS is that process's.")
	}
}
