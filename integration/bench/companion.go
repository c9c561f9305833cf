package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// companionVersion is the @uppy/companion that
// integration/bench/companion/package-lock.json pins.
const companionVersion = "6.2.2"

// companionRounds is how many turns each server takes in a row's time.
const companionRounds = 5

// companionRow is one row of the Companion table: one route of one server.
type companionRow struct {
	route, server string
	presignResult
	cpuPerReq time.Duration // the server process's CPU per answered request
}

// companionServer is one server of the Companion routes under load.
type companionServer struct {
	name   string
	base   string // the URL that Uppy's companionEndpoint would be
	client *http.Client
	token  string // Bearer token, "" for none
	pid    int
}

// benchCompanion loads the Companion routes that Uppy's @uppy/aws-s3 calls
// (params, create multipart, sign part) on the gateway, over HTTPS and plain
// HTTP with a Bearer token (token check, role policy, STS session
// credentials, sealed upload tokens), and on @uppy/companion from npm,
// configured for the same SeaweedFS with the gateway's static keys and no
// authentication; conc clients for d per row. The multipart uploads the
// load creates are aborted afterwards.
func benchCompanion(env *harness.Env, d time.Duration, conc int) (rows []companionRow, err error) {
	prefix := fmt.Sprintf("bench-companion/%d/", time.Now().UnixNano())
	defer func() {
		if n, aerr := abortUploads(env, prefix); aerr != nil {
			err = errors.Join(err, fmt.Errorf("aborting the load's multipart uploads: %v", aerr))
		} else {
			fmt.Fprintf(os.Stderr, "bench: aborted the %d multipart uploads the Companion load created\n", n)
		}
	}()

	dir, err := benchUserDir("ugw-bench-companion-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	gw, token, err := startSignedIn(env, harness.GatewayConfig{Site: companionSite(dir, prefix+"gateway/"), PlainSite: companionSite(dir, prefix+"gateway/")})
	if err != nil {
		return nil, err
	}
	defer gw.Stop()
	comp, err := startCompanion(env, dir, prefix+"companion/")
	if err != nil {
		return nil, err
	}
	defer comp.stop()

	servers := []companionServer{
		{name: "gateway, HTTPS", base: gw.URL + "/api", client: gw.Client, token: token, pid: gw.PID()},
		{name: "gateway, plain HTTP", base: gw.HTTPURL + "/api", client: gw.Client, token: token, pid: gw.PID()},
		{name: "@uppy/companion " + companionVersion + ", plain HTTP", base: comp.url, client: comp.client, pid: comp.cmd.Process.Pid},
	}
	type route struct {
		name string
		// prepare returns the request of one call; it may call the server.
		prepare func(s companionServer) (func(n int) *http.Request, error)
	}
	routes := []route{
		{"params: GET /s3/params", func(s companionServer) (func(int) *http.Request, error) {
			q := url.Values{"filename": {"report.pdf"}, "type": {"application/pdf"},
				"metadata[name]": {"report.pdf"}, "metadata[type]": {"application/pdf"}}
			return func(int) *http.Request {
				r, _ := http.NewRequest(http.MethodGet, s.base+"/s3/params?"+q.Encode(), nil)
				return r
			}, nil
		}},
		{"create multipart: POST /s3/multipart", func(s companionServer) (func(int) *http.Request, error) {
			return func(int) *http.Request { return companionCreateRequest(s) }, nil
		}},
		{"sign part: GET /s3/multipart/{uploadId}/{n}", func(s companionServer) (func(int) *http.Request, error) {
			var created struct{ Key, UploadID string }
			if err := companionDo(s, companionCreateRequest(s), &created); err != nil {
				return nil, fmt.Errorf("creating the upload whose parts are signed: %v", err)
			}
			base := s.base + "/s3/multipart/" + url.PathEscape(created.UploadID) + "/"
			q := "?" + url.Values{"key": {created.Key}}.Encode()
			return func(n int) *http.Request {
				r, _ := http.NewRequest(http.MethodGet, base+strconv.Itoa(n%100+1)+q, nil)
				return r
			}, nil
		}},
	}
	// Each row's time is cut into companionRounds slices, and the servers
	// take turns, in an order rotated every round, so that a change in the
	// machine's other load falls on all of them alike.
	for _, rt := range routes {
		reqs := make([]func(int) *http.Request, len(servers))
		samples := make([]loadSample, len(servers))
		cpu := make([]time.Duration, len(servers))
		for i, s := range servers {
			if reqs[i], err = rt.prepare(s); err != nil {
				return nil, fmt.Errorf("%s, %s: %v", rt.name, s.name, err)
			}
			// Warm up: the gateway's first call assumes the role; Node
			// compiles Companion's hot paths during the first thousands.
			if err := companionDo(s, reqs[i](0), nil); err != nil {
				return nil, fmt.Errorf("%s, %s: %v\n%s%s", rt.name, s.name, err, gw.Logs(), comp.logs())
			}
			loadFor(min(d/5, 2*time.Second), conc, func(n int) error { return companionDo(s, reqs[i](n), nil) })
		}
		for round := range companionRounds {
			for j := range servers {
				i := (round + j) % len(servers)
				s := servers[i]
				before, _ := cpuTime(s.pid)
				samples[i].run(d/companionRounds, conc, func(n int) error { return companionDo(s, reqs[i](n), nil) })
				after, _ := cpuTime(s.pid)
				cpu[i] += after - before
			}
		}
		for i, s := range servers {
			row := companionRow{route: rt.name, server: s.name, presignResult: samples[i].summary()}
			if row.requests > 0 {
				row.cpuPerReq = cpu[i] / time.Duration(row.requests)
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// companionSite is the gateway of the Companion table: a local identity
// provider (users in dir) and the file API at /api with the presign
// benchmark's settings, STS session credentials for part URLs and the
// gateway's own keys for POST policies (SeaweedFS refuses session
// credentials in a POST policy).
func companionSite(dir, prefix string) string {
	return fmt.Sprintf(`upload_auth {
		local {
			users_file %s
			keys_dir %s
		}
		token_cookie ugw_token
	}
	upload_api {
		%s
		prefix %s
		base_path /api
		role_arn {env.UGW_STS_ROLE_ARN}
		sts_endpoint {env.UGW_S3_ENDPOINT}
		post_policy_credentials gateway
		secret bench-secret-0123456789abcdef0123456789
	}`, filepath.Join(dir, "users.json"), filepath.Join(dir, "keys"), harness.S3Settings(""), prefix)
}

// companionCreateRequest is Uppy's create-multipart call.
func companionCreateRequest(s companionServer) *http.Request {
	body := `{"filename":"video.pdf","type":"application/pdf","metadata":{"name":"video.pdf","type":"application/pdf"}}`
	r, _ := http.NewRequest(http.MethodPost, s.base+"/s3/multipart", bytes.NewReader([]byte(body)))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// companionDo sends r to s (with its token) and, when out is not nil,
// decodes the 200 answer into it.
func companionDo(s companionServer, r *http.Request, out any) error {
	if s.token != "" {
		r.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("%s %s: status %d: %s", r.Method, r.URL.Path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// companionProc is a running @uppy/companion standalone server.
type companionProc struct {
	url    string
	client *http.Client
	cmd    *exec.Cmd
	log    *os.File
	done   chan struct{}
}

// startCompanion starts @uppy/companion's standalone server (installed by
// integration/bench/companion-up.sh) on a free loopback port, configured
// through its COMPANION_* variables for the test SeaweedFS with the
// gateway's keys, path-style, keys under prefix; its data dir and log in
// dir.
func startCompanion(env *harness.Env, dir, prefix string) (*companionProc, error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return nil, err
	}
	modules, err := npmModules(root, "integration/bench/companion", "UPLOAD_GATEWAY_COMPANION_DIR", "@uppy/companion", "integration/bench/companion-up.sh")
	if err != nil {
		return nil, err
	}
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "companion-data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "companion.log"))
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	cmd := exec.Command("node", filepath.Join(root, "integration", "bench", "companion", "server.mjs"))
	cmd.Env = append(os.Environ(),
		"COMPANION_MODULE="+filepath.Join(modules, "@uppy", "companion"),
		"COMPANION_PORT="+strconv.Itoa(port),
		"COMPANION_DOMAIN="+fmt.Sprintf("127.0.0.1:%d", port),
		"COMPANION_PROTOCOL=http",
		"COMPANION_SECRET="+hex.EncodeToString(secret[:16]),
		"COMPANION_PREAUTH_SECRET="+hex.EncodeToString(secret[16:]),
		// Where Companion may send files it fetches from remote providers;
		// none here, but production mode refuses to start without it.
		"COMPANION_UPLOAD_URLS="+env.S3Endpoint+"/",
		"COMPANION_DATADIR="+data,
		"COMPANION_CLIENT_ORIGINS=true",
		"COMPANION_AWS_KEY="+env.GatewayAccess,
		"COMPANION_AWS_SECRET="+env.GatewaySecret,
		"COMPANION_AWS_BUCKET="+env.Bucket,
		"COMPANION_AWS_REGION="+env.Region,
		"COMPANION_AWS_ENDPOINT="+env.S3Endpoint,
		"COMPANION_AWS_FORCE_PATH_STYLE=true",
		"COMPANION_AWS_PREFIX="+prefix,
		"NODE_ENV=production",
	)
	cmd.Stdout, cmd.Stderr = log, log
	jar, _ := cookiejar.New(nil)
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	c := &companionProc{
		url: fmt.Sprintf("http://127.0.0.1:%d", port),
		// With a cookie jar, as a browser keeps Companion's session
		// cookie: without one Companion makes a new session per request.
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Jar: jar},
		cmd:    cmd, log: log, done: make(chan struct{}),
	}
	go func() { _ = cmd.Wait(); close(c.done) }()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-c.done:
			err := fmt.Errorf("@uppy/companion exited at start-up:\n%s", c.logs())
			log.Close()
			return nil, err
		default:
		}
		resp, err := c.client.Get(c.url + "/s3/params?filename=ready.txt&type=text%2Fplain")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
	}
	c.stop()
	return nil, fmt.Errorf("@uppy/companion did not answer on %s within 30 s:\n%s", c.url, c.logs())
}

// stop ends the Companion process (SIGTERM, SIGKILL after 5 s) by its PID.
func (c *companionProc) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.log.Close()
}

// logs is the end of Companion's log.
func (c *companionProc) logs() string {
	b, _ := os.ReadFile(c.log.Name())
	if len(b) > 4<<10 {
		b = b[len(b)-4<<10:]
	}
	return string(b)
}

// npmModules is the node_modules directory of the npm package dir pkg
// (relative to the repository root) as its install script installs it: the
// directory in envDir, or ~/.cache/upload-gateway/<base name of
// pkg>-<hash of its lock file>/ (integration/testenv/npm.sh).
func npmModules(root, pkg, envDir, what, installer string) (string, error) {
	dir := os.Getenv(envDir)
	if dir == "" {
		lock, err := os.ReadFile(filepath.Join(root, pkg, "package-lock.json"))
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(lock)
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(home, ".cache", "upload-gateway", filepath.Base(pkg)+"-"+hex.EncodeToString(sum[:])[:16])
	}
	if _, err := os.Stat(filepath.Join(dir, ".installed")); err != nil {
		return "", fmt.Errorf("%s is not installed in %s (run %s): %v", what, dir, installer, err)
	}
	return filepath.Join(dir, "node_modules"), nil
}

// abortUploads aborts every multipart upload under prefix and returns how
// many there were. It lists a page, aborts it with a few workers, and lists
// again, a bounded number of times.
func abortUploads(env *harness.Env, prefix string) (int, error) {
	ctx := context.Background()
	c := env.S3()
	total := 0
	for range 1000 {
		page, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &env.Bucket, Prefix: &prefix})
		if err != nil {
			return total, err
		}
		if len(page.Uploads) == 0 {
			return total, nil
		}
		work := make(chan [2]string)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		for range 8 {
			wg.Go(func() {
				for u := range work {
					_, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &env.Bucket, Key: &u[0], UploadId: &u[1]})
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			})
		}
		for _, u := range page.Uploads {
			work <- [2]string{aws.ToString(u.Key), aws.ToString(u.UploadId)}
		}
		close(work)
		wg.Wait()
		if firstErr != nil {
			return total, firstErr
		}
		total += len(page.Uploads)
	}
	return total, errors.New("still uploads left after 1000 rounds")
}

func printCompanion(rows []companionRow, d time.Duration, conc int) {
	fmt.Printf("\nUppy's Companion routes: the gateway (Bearer JWT checked, role policy, STS session credentials for part URLs, sealed upload tokens) "+
		"vs @uppy/companion %s standalone (no authentication, static keys), both against the same SeaweedFS; %d clients on keep-alive connections, %s per row in %d turns taken in rotation with the other servers, "+
		"load generator and servers on the same %d CPUs\n\n", companionVersion, conc, d, companionRounds, runtime.NumCPU())
	fmt.Println("| route | server | requests | errors | req/s | p50 | p90 | p99 | server CPU per request | req/s vs Companion |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	companion := map[string]float64{}
	for _, r := range rows {
		if r.server == rows[len(rows)-1].server {
			companion[r.route] = r.reqPerSec
		}
	}
	for _, r := range rows {
		ratio := "–"
		if c := companion[r.route]; c > 0 {
			ratio = fmt.Sprintf("%.2f", r.reqPerSec/c)
		}
		fmt.Printf("| %s | %s | %d | %d | %.0f | %s | %s | %s | %s | %s |\n", r.route, r.server, r.requests, r.errors, r.reqPerSec,
			r.p50.Round(10*time.Microsecond), r.p90.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.cpuPerReq.Round(time.Microsecond), ratio)
	}
	fmt.Println("\nThe gateway's create multipart also checks the name and type, applies SSE-KMS and seals the upload id into a token; sign part opens that token " +
		"and checks the key against it and the user's prefix. Companion signs whatever key and upload id it is given.")
}
