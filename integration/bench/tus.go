package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/dustin/go-humanize"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// tusdVersion is the tusd that integration/bench/tusd/go.mod pins.
const tusdVersion = "v2.9.1"

// tusServer is one server process of the tus table: a gateway (upload_tus
// or the streamed upload_gateway) or tusd.
type tusServer struct {
	pid int
	// upload sends one body of size bytes.
	upload func(body io.Reader, size int64) error
	logs   func() string
	stop   func()
}

// tusRow is one row of the tus table: one way of uploading, in its own
// server process so that the peak RSS is that row's.
type tusRow struct {
	label, server string // server: "gateway" or "tusd"
	chunk         int64  // PATCH size; 0 for the streamed upload
	prefix        string // where the row's objects land
	srv           *tusServer
	sse           string // the stored objects' ServerSideEncryption, checked after every run
	secs          []float64
	cpu           []cpuUse
	baseline      int64 // VmRSS after the warm-up
	peak          int64 // VmHWM after all runs
}

// benchTus uploads size bytes runs times along each row: the gateway's
// upload_tus with each chunk size, the gateway's streamed upload (one raw
// PUT, the baseline), and tusd with its s3store on the same SeaweedFS with
// each chunk size, all over plain HTTP, in an order rotated every run. Every
// row has its own server process, started before the first run and warmed
// up with a 1 MiB upload.
func benchTus(env *harness.Env, size int64, chunks []int64, runs int, tusPart, partSize int64, concurrency int) (rows []*tusRow, err error) {
	prefix := fmt.Sprintf("bench-tus/%d/", time.Now().UnixNano())
	defer func() {
		if _, aerr := abortUploads(env, prefix); aerr != nil {
			err = errors.Join(err, fmt.Errorf("aborting the multipart uploads left: %v", aerr))
		}
		reclaim(env, prefix)
	}()
	tusd, err := buildTusd()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ugw-bench-tus-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer func() {
		for _, r := range rows {
			r.srv.stop()
		}
	}()

	for _, c := range chunks {
		srv, err := startGatewayTus(env, prefix+fmt.Sprintf("gw-tus-%d/", c), prefix+fmt.Sprintf("gw-tus-tmp-%d/", c), tusPart, c)
		if err != nil {
			return rows, err
		}
		rows = append(rows, &tusRow{label: "gateway upload_tus, " + humanize.IBytes(uint64(c)) + " PATCHes", server: "gateway", chunk: c, srv: srv,
			prefix: prefix + fmt.Sprintf("gw-tus-%d/", c)})
	}
	srv, err := startGatewayStreamed(env, prefix+"gw-put/", partSize, concurrency)
	if err != nil {
		return rows, err
	}
	rows = append(rows, &tusRow{label: "gateway streamed upload_gateway, one PUT (baseline)", server: "gateway", srv: srv, prefix: prefix + "gw-put/"})
	for _, c := range chunks {
		sub := filepath.Join(dir, fmt.Sprintf("tusd-%d", c))
		srv, err := startTusd(env, tusd, sub, prefix+fmt.Sprintf("tusd-%d/", c), tusPart, c)
		if err != nil {
			return rows, err
		}
		rows = append(rows, &tusRow{label: "tusd " + tusdVersion + " s3store, " + humanize.IBytes(uint64(c)) + " PATCHes", server: "tusd", chunk: c, srv: srv,
			prefix: prefix + fmt.Sprintf("tusd-%d/", c)})
	}

	for _, r := range rows {
		if err := r.srv.upload(harness.NewRandomReader(1, 1<<20), 1<<20); err != nil {
			return rows, fmt.Errorf("%s: warm-up: %v\n%s", r.label, err, r.srv.logs())
		}
		if r.baseline, err = harness.RSS(r.srv.pid); err != nil {
			return rows, err
		}
	}
	reclaim(env, prefix)
	s3 := s3PIDs()
	for i := range runs {
		for j := range rows {
			r := rows[(i+j)%len(rows)]
			meter := cpuMeter{middle: r.srv.pid, s3: s3}
			before := meter.snapshot()
			start := time.Now()
			if err := r.srv.upload(harness.NewRandomReader(uint64(time.Now().UnixNano()), size), size); err != nil {
				return rows, fmt.Errorf("%s: %v\n%s", r.label, err, r.srv.logs())
			}
			r.secs = append(r.secs, time.Since(start).Seconds())
			r.cpu = append(r.cpu, meter.since(before, size))
			fmt.Fprintf(os.Stderr, "bench: tus run %d/%d: %s: %.1f s\n", i+1, runs, r.label, r.secs[len(r.secs)-1])
			sse, err := checkTusStored(env, r.prefix, size)
			if err != nil {
				return rows, fmt.Errorf("%s: %v", r.label, err)
			}
			if r.sse == "" || sse != "aws:kms" {
				r.sse = sse
			}
			// Free SeaweedFS's disk before the next GiB.
			reclaim(env, prefix)
		}
	}
	for _, r := range rows {
		if r.peak, err = harness.PeakRSS(r.srv.pid); err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// checkTusStored checks that the one object under prefix (tusd's .info and
// .part objects aside) has size bytes and returns its server-side
// encryption as S3 reports it.
func checkTusStored(env *harness.Env, prefix string, size int64) (string, error) {
	ctx := context.Background()
	c := env.S3()
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &env.Bucket, Prefix: &prefix})
	if err != nil {
		return "", err
	}
	var keys []string
	for _, o := range list.Contents {
		if k := aws.ToString(o.Key); !strings.HasSuffix(k, ".info") && !strings.HasSuffix(k, ".part") {
			keys = append(keys, k)
		}
	}
	if len(keys) != 1 {
		return "", fmt.Errorf("objects under %s: %v, want one", prefix, keys)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &env.Bucket, Key: &keys[0]})
	if err != nil {
		return "", err
	}
	if n := aws.ToInt64(head.ContentLength); n != size {
		return "", fmt.Errorf("%s: %d bytes stored, want %d", keys[0], n, size)
	}
	if head.ServerSideEncryption == "" {
		return "none", nil
	}
	return string(head.ServerSideEncryption), nil
}

// startGatewayTus starts a gateway whose plain-HTTP site serves upload_tus
// at /tus/ (anonymous, part_size tusPart), with a client that sends chunk
// bytes per PATCH.
func startGatewayTus(env *harness.Env, prefix, temp string, tusPart, chunk int64) (*tusServer, error) {
	site := fmt.Sprintf(`route /tus/* {
		upload_tus {
			%s
			prefix %s
			temp_prefix %s
			secret {env.TUS_SECRET}
			part_size %d
			allow_anonymous
		}
	}`, harness.S3Settings(""), prefix, temp, tusPart)
	gw, err := env.StartGateway(harness.GatewayConfig{Site: site, PlainSite: site, Env: []string{"TUS_SECRET=bench-tus-secret-0123456789abcdef0123456789"}})
	if err != nil {
		return nil, err
	}
	return &tusServer{
		pid: gw.PID(),
		upload: func(body io.Reader, size int64) error {
			return tusUpload(gw.Client, gw.HTTPURL+"/tus/", body, size, chunk)
		},
		logs: gw.Logs,
		stop: gw.Stop,
	}, nil
}

// startGatewayStreamed starts a gateway whose plain-HTTP site is the
// benchmark's usual upload_gateway, taking one raw PUT per upload.
func startGatewayStreamed(env *harness.Env, prefix string, partSize int64, concurrency int) (*tusServer, error) {
	site := gatewayBlock(prefix, partSize, concurrency)
	gw, err := env.StartGateway(harness.GatewayConfig{Site: site, PlainSite: site})
	if err != nil {
		return nil, err
	}
	return &tusServer{
		pid:    gw.PID(),
		upload: func(body io.Reader, size int64) error { return putThroughGateway(gw.Client, gw.HTTPURL, size, body) },
		logs:   gw.Logs,
		stop:   gw.Stop,
	}, nil
}

// buildTusd runs integration/bench/tusd-build.sh, which builds tusd from
// its pinned module (once) and prints the binary's path.
func buildTusd() (string, error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(root, "integration", "bench", "tusd-build.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("integration/bench/tusd-build.sh: %v", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// startTusd starts tusd's handler with s3store (integration/bench/tusd) on
// a free loopback port against the test SeaweedFS with the gateway's keys,
// SSE-KMS with the test key on its multipart uploads, PreferredPartSize
// tusPart and MinPartSize 5 MiB; its parts wait on disk in dir.
func startTusd(env *harness.Env, bin, dir, prefix string, tusPart, chunk int64) (*tusServer, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "tusd.log")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "-listen", addr, "-s3-endpoint", env.S3Endpoint, "-s3-region", env.Region, "-s3-bucket", env.Bucket,
		"-s3-object-prefix", prefix, "-s3-part-size", strconv.FormatInt(tusPart, 10), "-s3-min-part-size", strconv.Itoa(5<<20),
		"-sse-kms-key", env.KMSKeyID, "-tmp-dir", filepath.Join(dir, "tmp"))
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+env.GatewayAccess, "AWS_SECRET_ACCESS_KEY="+env.GatewaySecret)
	proc, err := harness.StartProcess(cmd, logPath)
	if err != nil {
		return nil, err
	}
	logs := func() string {
		b, _ := os.ReadFile(logPath)
		if len(b) > 8<<10 {
			b = b[len(b)-8<<10:]
		}
		return "== tusd.log ==\n" + string(b)
	}
	stop := func() { proc.Stop(syscall.SIGTERM, 5*time.Second) }
	client := &http.Client{Transport: &http.Transport{}}
	base := "http://" + addr + "/files/"
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-proc.Done:
			err := fmt.Errorf("tusd exited at start-up:\n%s", logs())
			stop()
			return nil, err
		default:
		}
		req, _ := http.NewRequest(http.MethodOptions, base, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return &tusServer{
				pid:    cmd.Process.Pid,
				upload: func(body io.Reader, size int64) error { return tusUpload(client, base, body, size, chunk) },
				logs:   logs,
				stop:   stop,
			}, nil
		}
	}
	stop()
	return nil, fmt.Errorf("tusd did not answer on %s within 30 s:\n%s", base, logs())
}

// tusUpload is a tus 1.0 client: it creates an upload of size bytes at
// endpoint (creation extension, Upload-Length and Upload-Metadata) and
// sends body in PATCHes of chunk bytes, each at the offset the previous
// one's Upload-Offset answered.
func tusUpload(client *http.Client, endpoint string, body io.Reader, size, chunk int64) error {
	b64 := base64.StdEncoding.EncodeToString
	req, err := http.NewRequest(http.MethodPost, endpoint, http.NoBody)
	if err != nil {
		return err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	req.Header.Set("Upload-Metadata", "filename "+b64([]byte("bench.bin"))+",filetype "+b64([]byte("application/octet-stream")))
	resp, err := tusDo(client, req, http.StatusCreated)
	if err != nil {
		return fmt.Errorf("creation: %v", err)
	}
	loc, err := req.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return fmt.Errorf("creation: bad Location %q", resp.Header.Get("Location"))
	}
	for offset := int64(0); offset < size; {
		n := min(chunk, size-offset)
		req, err := http.NewRequest(http.MethodPatch, loc.String(), io.LimitReader(body, n))
		if err != nil {
			return err
		}
		req.ContentLength = n
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
		resp, err := tusDo(client, req, http.StatusNoContent)
		if err != nil {
			return fmt.Errorf("PATCH at %d: %v", offset, err)
		}
		got, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
		if err != nil || got != offset+n {
			return fmt.Errorf("PATCH at %d of %d bytes: Upload-Offset %q", offset, n, resp.Header.Get("Upload-Offset"))
		}
		offset = got
	}
	return nil
}

// tusDo sends req and checks the status; the body is drained and closed.
func tusDo(client *http.Client, req *http.Request, want int) (*http.Response, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: status %d: %s", req.Method, (&url.URL{Path: req.URL.Path}).String(), resp.StatusCode, bytes.TrimSpace(b))
	}
	return resp, nil
}

func printTus(rows []*tusRow, size int64, runs int, tusPart, partSize int64, concurrency int) {
	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\ntus uploads of %s through the gateway (upload_tus, part_size %s) vs its streamed upload (one raw PUT, part size %s, concurrency %d) "+
		"vs tusd %s with s3store (PreferredPartSize %s, MinPartSize 5 MiB, its defaults otherwise: 10 parts to S3 at once, 20 buffered on disk), "+
		"all over plain HTTP to the same SeaweedFS with SSE-KMS; median of %d runs, order rotated every run, each row its own server process\n",
		humanize.IBytes(uint64(size)), humanize.IBytes(uint64(tusPart)), humanize.IBytes(uint64(partSize)), concurrency,
		tusdVersion, humanize.IBytes(uint64(tusPart)), runs)
	fmt.Printf("machine: %s, %d CPUs, %s/%s, %s; date %s; load average at the end %s\n\n", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH,
		runtime.Version(), time.Now().UTC().Format("2006-01-02 15:04 MST"), strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))
	fmt.Println("| upload | s | MiB/s | ratio to streamed | server CPU s/GiB | S3 CPU s/GiB | peak RSS − baseline | memory bound + 16 MiB | stored as | tusd / ours: MiB/s | tusd / ours: server CPU |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
	type stat struct{ secs, mibps, cpu, s3 float64 }
	stats := map[*tusRow]stat{}
	var streamed float64
	ours := map[int64]stat{}
	for _, r := range rows {
		c := medianCPU(r.cpu)
		s := median(r.secs)
		st := stat{secs: s, mibps: float64(size) / (1 << 20) / s, cpu: c.middle, s3: c.s3}
		stats[r] = st
		if r.chunk == 0 {
			streamed = st.mibps
		} else if r.server == "gateway" {
			ours[r.chunk] = st
		}
	}
	for _, r := range rows {
		st := stats[r]
		speed, cpu := "–", "–"
		if o, ok := ours[r.chunk]; ok && r.server == "tusd" {
			speed, cpu = fmt.Sprintf("%.2f", st.mibps/o.mibps), fmt.Sprintf("%.2f", st.cpu/o.cpu)
		}
		bound := "– (parts on disk)"
		if r.server == "gateway" {
			b := tusPart // one part per PATCH in progress
			if r.chunk == 0 {
				b = partSize * int64(concurrency+1)
			}
			met := "met"
			if r.peak-r.baseline > b+16<<20 {
				met = "NOT met"
			}
			bound = fmt.Sprintf("%d MiB: %s", (b+16<<20)>>20, met)
		}
		fmt.Printf("| %s | %.1f | %.0f | %.2f | %.2f | %.2f | %d MiB | %s | %s | %s | %s |\n", r.label, st.secs, st.mibps, st.mibps/streamed,
			st.cpu, st.s3, (r.peak-r.baseline)>>20, bound, r.sse, speed, cpu)
	}
	fmt.Println("\nserver CPU s/GiB: user+system CPU seconds per GiB of the gateway or tusd process (median); S3: SeaweedFS with local-kms. " +
		"peak RSS − baseline: VmHWM after all runs minus VmRSS after a 1 MiB warm-up upload; memory bound + 16 MiB: the peak RSS table's target for streamed uploads, " +
		"with upload_tus's bound one part_size buffer per PATCH in progress. " +
		"stored as: the object's server-side encryption from HeadObject after every run (its size checked too).")
	fmt.Printf("memory bounds: gateway upload_tus holds one part (%s) per PATCH in progress; the streamed upload part size × (concurrency+1) = %d MiB; "+
		"tusd keeps its parts in temporary files on disk (page cache, not RSS).\n", humanize.IBytes(uint64(tusPart)), partSize*int64(concurrency+1)>>20)
	fmt.Printf("differences: upload_tus takes a lock object (If-None-Match) and reads the upload's state from S3 (ListParts, the tail) on every PATCH, "+
		"then sends the PATCH's parts one at a time with UNSIGNED-PAYLOAD (payload_signing auto, loopback S3); the streamed upload sends %d parts at once; "+
		"tusd (memorylocker, state in its .info object and ListParts) sends up to 10 parts at once from its disk buffer, its S3 client on aws-sdk-go-v2's defaults "+
		"(SigV4 over each part's SHA-256, DisableContentHashes off as in tusd's CLI, plus the SDK's default CRC32 request checksum). "+
		"Both store SSE-KMS objects: the gateway by configuration, tusd through an S3 client middleware in integration/bench/tusd (s3store has no SSE setting); "+
		"tusd's .info and .part objects stay unencrypted. tusd runs with its in-memory locker, so unlike upload_tus it cannot be run as several instances.\n", concurrency)
}
