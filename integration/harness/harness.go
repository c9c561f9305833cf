// Package harness runs the gateway and its real neighbours for the
// integration tests and the benchmark command: it builds the custom Caddy
// binary, starts it on loopback with a given Caddyfile (other programs,
// such as the benchmark's tusd, run as a [Process] too), reads its RSS,
// and talks to the S3 server started by integration/testenv/up.sh.
//
// The environment comes from the env file that up.sh writes (UGW_* variables).
package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Env is the test environment.
type Env struct {
	S3Endpoint    string
	Region        string
	Bucket        string
	KMSKeyID      string // alias
	KMSKeyARN     string
	AccessKey     string // admin
	SecretKey     string
	GatewayAccess string
	GatewaySecret string
}

// LoadEnv reads the UGW_* variables; it fails with instructions when the
// test environment is not running.
func LoadEnv() (*Env, error) {
	e := &Env{
		S3Endpoint:    os.Getenv("UGW_S3_ENDPOINT"),
		Region:        os.Getenv("UGW_S3_REGION"),
		Bucket:        os.Getenv("UGW_S3_BUCKET"),
		KMSKeyID:      os.Getenv("UGW_KMS_KEY_ID"),
		KMSKeyARN:     os.Getenv("UGW_KMS_KEY_ARN"),
		AccessKey:     os.Getenv("UGW_S3_ACCESS_KEY"),
		SecretKey:     os.Getenv("UGW_S3_SECRET_KEY"),
		GatewayAccess: os.Getenv("UGW_GATEWAY_ACCESS_KEY"),
		GatewaySecret: os.Getenv("UGW_GATEWAY_SECRET_KEY"),
	}
	if e.S3Endpoint == "" || e.Bucket == "" || e.KMSKeyID == "" || e.AccessKey == "" {
		return nil, errors.New("the test S3 server is not configured: run ./scripts/test, or " +
			"integration/testenv/up.sh .testenv && source .testenv/env before go test -tags integration ./integration/...")
	}
	if e.Region == "" {
		e.Region = "us-east-1"
	}
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(e.S3Endpoint, "http://"), 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("the test S3 server at %s is not reachable (start it with integration/testenv/up.sh): %v", e.S3Endpoint, err)
	}
	conn.Close()
	return e, nil
}

// S3 returns an admin client of the test S3 server, for assertions.
func (e *Env) S3() *s3.Client {
	return e.S3At(e.S3Endpoint, e.AccessKey, e.SecretKey)
}

// S3At returns a client of the S3 server at endpoint with the given keys.
func (e *Env) S3At(endpoint, access, secret string) *s3.Client {
	return s3.New(s3.Options{
		Region:       e.Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
	})
}

// RepoRoot finds the repository root from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// BuildGateway builds ./cmd/caddy once per process and returns the binary.
func BuildGateway() (string, error) {
	buildOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "ugw-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/caddy")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building the gateway: %v\n%s", err, out)
		}
	})
	return buildPath, buildErr
}

// RemoveBuild deletes the binary BuildGateway built (call it once, when the
// process is done with gateways).
func RemoveBuild() {
	if buildPath != "" {
		_ = os.RemoveAll(filepath.Dir(buildPath))
	}
}

// S3Settings returns the Caddyfile lines that point an upload_gateway or
// upload_api block at the test S3 server (bucket, region, endpoint, the
// gateway's keys, the test KMS key), read from the UGW_* variables by the
// gateway process itself. endpoint "" means the server's own endpoint.
func S3Settings(endpoint string) string {
	if endpoint == "" {
		endpoint = "{env.UGW_S3_ENDPOINT}"
	}
	return `bucket {env.UGW_S3_BUCKET}
		region {env.UGW_S3_REGION}
		endpoint ` + endpoint + `
		path_style
		access_key_id {env.UGW_GATEWAY_ACCESS_KEY}
		secret_access_key {env.UGW_GATEWAY_SECRET_KEY}
		kms_key {env.UGW_KMS_KEY_ID}`
}

// FreePort returns a free loopback TCP port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Gateway is a running gateway process.
type Gateway struct {
	// URL is the gateway's HTTPS base URL, e.g. https://127.0.0.1:PORT.
	URL string
	// HTTPURL is its plain HTTP base URL (on HTTPPort), for benchmarks.
	HTTPURL string
	// Client trusts the gateway's internal CA.
	Client *http.Client
	// AdminURL is the admin endpoint.
	AdminURL string
	Dir      string

	proc    *Process
	storage string // the Caddy storage directory (root.crt lives there)
	args    []string
	environ []string
}

// GatewayConfig is what StartGateway needs.
type GatewayConfig struct {
	// Site is the body of the HTTPS site block; it is wrapped in global
	// options and `https://127.0.0.1:PORT { tls internal … }`.
	Site string
	// PlainSite, when set, is the body of a plain-HTTP site on another port.
	PlainSite string
	// Env is added to the gateway's environment.
	Env []string
	// Globals is added to the global options block.
	Globals string
	// StorageDir, when set, is Caddy's storage directory (`storage
	// file_system`) instead of one inside the gateway's own directory, so
	// that several gateways share TLS certificates and their internal CA.
	StorageDir string
}

// StartGateway writes a Caddyfile, starts the gateway and waits until it
// serves. Stop it with Stop.
func (e *Env) StartGateway(cfg GatewayConfig) (*Gateway, error) {
	bin, err := BuildGateway()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ugw-gw-")
	if err != nil {
		return nil, err
	}
	httpsPort, _ := FreePort()
	httpPort, _ := FreePort()
	adminPort, _ := FreePort()
	plainPort, _ := FreePort()
	storage := cfg.StorageDir
	if storage == "" {
		storage = filepath.Join(dir, "data")
	}
	caddyfile := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	default_bind 127.0.0.1
	auto_https disable_redirects
	skip_install_trust
	http_port %d
	https_port %d
	storage file_system %s
	local_certs
	grace_period 1s
	log {
		output file %s
		format json
		level DEBUG
	}
	%s
}

https://127.0.0.1:%d {
	bind 127.0.0.1
	tls internal
	%s
}
`, adminPort, httpPort, httpsPort, storage, filepath.Join(dir, "caddy.log"), cfg.Globals, httpsPort, cfg.Site)
	if cfg.PlainSite != "" {
		caddyfile += fmt.Sprintf("\nhttp://127.0.0.1:%d {\n\tbind 127.0.0.1\n\t%s\n}\n", plainPort, cfg.PlainSite)
	}
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o644); err != nil {
		return nil, err
	}
	environ := append(os.Environ(),
		"HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "xdg-data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "xdg-config"),
		"UGW_S3_ENDPOINT="+e.S3Endpoint, "UGW_S3_REGION="+e.Region, "UGW_S3_BUCKET="+e.Bucket,
		"UGW_KMS_KEY_ID="+e.KMSKeyID, "UGW_GATEWAY_ACCESS_KEY="+e.GatewayAccess, "UGW_GATEWAY_SECRET_KEY="+e.GatewaySecret)
	g := &Gateway{
		URL:      fmt.Sprintf("https://127.0.0.1:%d", httpsPort),
		HTTPURL:  fmt.Sprintf("http://127.0.0.1:%d", plainPort),
		AdminURL: fmt.Sprintf("http://127.0.0.1:%d", adminPort),
		Dir:      dir,
		storage:  storage,
		args:     []string{bin, "run", "--config", path, "--adapter", "caddyfile"},
		environ:  append(environ, cfg.Env...),
	}
	if err := g.start(); err != nil {
		return nil, err
	}
	return g, nil
}

// start runs the process and waits until it serves.
func (g *Gateway) start() error {
	cmd := exec.Command(g.args[0], g.args[1:]...)
	cmd.Dir = g.Dir
	cmd.Env = g.environ
	proc, err := StartProcess(cmd, filepath.Join(g.Dir, "stderr.log"))
	if err != nil {
		return err
	}
	g.proc = proc
	if err := g.waitReady(); err != nil {
		logs := g.Logs()
		g.Stop()
		return fmt.Errorf("%v\n--- gateway output ---\n%s", err, logs)
	}
	return nil
}

// Restart starts a gateway that was shut down or killed again, with the
// same Caddyfile, ports and directory, and waits until it serves.
func (g *Gateway) Restart() error {
	if !g.Stopped() {
		return errors.New("the gateway is still running")
	}
	return g.start()
}

// Shutdown stops the process by PID with SIGTERM (Caddy's graceful
// shutdown) and waits for it, keeping its directory for Restart.
func (g *Gateway) Shutdown() { g.proc.Stop(syscall.SIGTERM, 10*time.Second) }

// Kill stops the process by PID with SIGKILL, as a crash would, and waits
// for it, keeping its directory for Restart.
func (g *Gateway) Kill() { g.proc.Stop(syscall.SIGKILL, 10*time.Second) }

func (g *Gateway) waitReady() error {
	deadline := time.Now().Add(60 * time.Second)
	rootPath := filepath.Join(g.storage, "pki", "authorities", "local", "root.crt")
	for time.Now().Before(deadline) {
		select {
		case <-g.proc.Done:
			return errors.New("the gateway exited during start-up")
		default:
		}
		if pem, err := os.ReadFile(rootPath); err == nil {
			pool := x509.NewCertPool()
			if pool.AppendCertsFromPEM(pem) {
				g.Client = &http.Client{Transport: &http.Transport{
					TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
					MaxIdleConnsPerHost: 256,
				}}
				if resp, err := g.Client.Get(g.URL + "/__ready"); err == nil {
					resp.Body.Close()
					return nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the gateway did not become ready within 60s")
}

// PID returns the gateway's process id.
func (g *Gateway) PID() int { return g.proc.Cmd.Process.Pid }

// PeakRSS returns the process's peak resident set size (VmHWM) in bytes.
func (g *Gateway) PeakRSS() (int64, error) { return PeakRSS(g.PID()) }

// RSS returns the process's current resident set size (VmRSS) in bytes.
func (g *Gateway) RSS() (int64, error) { return RSS(g.PID()) }

// RSS reads VmRSS of a process.
func RSS(pid int) (int64, error) { return procStatus(pid, "VmRSS:") }

// PeakRSS reads VmHWM of a process.
func PeakRSS(pid int) (int64, error) { return procStatus(pid, "VmHWM:") }

func procStatus(pid int, field string) (int64, error) {
	if runtime.GOOS != "linux" {
		return 0, errors.New("RSS is read from /proc on Linux only")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("%s not found", field)
}

// Logs returns what the gateway wrote to its logs so far.
func (g *Gateway) Logs() string {
	var b strings.Builder
	for _, name := range []string{"stderr.log", "caddy.log"} {
		data, _ := os.ReadFile(filepath.Join(g.Dir, name))
		if len(data) > 20000 {
			data = data[len(data)-20000:]
		}
		fmt.Fprintf(&b, "== %s ==\n%s\n", name, data)
	}
	return b.String()
}

// Stop stops the gateway by PID (SIGTERM, then SIGKILL) and removes its
// directory (not a shared StorageDir).
func (g *Gateway) Stop() {
	g.Shutdown()
	os.RemoveAll(g.Dir)
}

// RootCAFile is the internal CA's root certificate, which signs the
// gateway's certificate.
func (g *Gateway) RootCAFile() string {
	return filepath.Join(g.storage, "pki", "authorities", "local", "root.crt")
}

// Stopped reports whether the process has exited.
func (g *Gateway) Stopped() bool { return g.proc.Exited() }

// Leftovers lists the multipart uploads and objects under prefix.
func (e *Env) Leftovers(ctx context.Context, prefix string) (uploads, objects []string, err error) {
	c := e.S3()
	mu, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &e.Bucket, Prefix: &prefix})
	if err != nil {
		return nil, nil, fmt.Errorf("listing multipart uploads: %v", err)
	}
	for _, u := range mu.Uploads {
		uploads = append(uploads, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
	}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &e.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("listing objects: %v", err)
		}
		for _, o := range page.Contents {
			objects = append(objects, aws.ToString(o.Key))
		}
	}
	return uploads, objects, nil
}

// DeletePrefix removes every object and multipart upload under prefix.
func (e *Env) DeletePrefix(ctx context.Context, prefix string) {
	c := e.S3()
	uploads, objects, _ := e.Leftovers(ctx, prefix)
	for _, u := range uploads {
		key, id, _ := strings.Cut(u, " ")
		_, _ = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &e.Bucket, Key: &key, UploadId: &id})
	}
	for _, k := range objects {
		_, _ = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.Bucket, Key: aws.String(k)})
	}
}
