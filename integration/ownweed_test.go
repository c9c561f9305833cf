//go:build integration

package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// ownWeed is a SeaweedFS `weed mini` this test file starts, stops and
// restarts on ports of its own, so the shared server is never touched.
// It reuses the shared local-kms for SSE-KMS.
type ownWeed struct {
	t        *testing.T
	bin      string
	dir      string
	args     []string
	cmd      *exec.Cmd
	done     chan struct{}
	Endpoint string
}

// Ports: the shared environment uses 21xxx-22xxx (+10000 for gRPC);
// these are offset by 3170 from the defaults of integration/testenv.
const ownWeedOffset = 3170

// ownIdentity is one S3 identity of the own server.
type ownIdentity struct {
	Name, Access, Secret string
	Actions              []string
}

// startOwnWeed writes an S3 config with identities and one role (trusted by
// the identity trustedUser) and starts weed mini; it is stopped when the
// test ends.
func startOwnWeed(t *testing.T, bucket string, ids []ownIdentity, trustedUser string) *ownWeed {
	t.Helper()
	binDir, err := exec.Command(filepath.Join(repoRoot(t), "integration/testenv/build-tools.sh")).Output()
	if err != nil {
		t.Skipf("no SeaweedFS binary: %v", err)
	}
	bin := filepath.Join(strings.TrimSpace(string(binDir)), "weed")
	s3Port, master, volume, filer, admin := 21833+ownWeedOffset, 21333+ownWeedOffset, 21340+ownWeedOffset, 21888+ownWeedOffset, 21646+ownWeedOffset
	for _, p := range []int{s3Port, master, volume, filer, admin} {
		for _, q := range []int{p, p + 10000} {
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", q), 200*time.Millisecond); err == nil {
				c.Close()
				t.Skipf("port %d is in use; another own SeaweedFS is running", q)
			}
		}
	}
	dir := t.TempDir()
	type cred struct {
		AccessKey string `json:"accessKey"`
		SecretKey string `json:"secretKey"`
	}
	var identities []map[string]any
	for _, id := range ids {
		identities = append(identities, map[string]any{"name": id.Name, "credentials": []cred{{id.Access, id.Secret}}, "actions": id.Actions})
	}
	cfg := map[string]any{
		"identities": identities,
		"kms": map[string]any{"default_provider": "lkms", "providers": map[string]any{"lkms": map[string]any{
			"type": "aws", "region": env.Region, "endpoint": os.Getenv("UGW_KMS_ENDPOINT"),
			"access_key": "AKIAUGWTESTKMS000001", "secret_key": "ugwTestKmsSecret-local-kms-ignores-this"}}},
		"sts":    map[string]any{"tokenDuration": "1h", "maxSessionLength": "12h", "issuer": "seaweedfs-sts", "signingKey": "dGVzdC1zaWduaW5nLWtleS0zMi1ieXRlcy1sb25nISE="},
		"policy": map[string]any{"defaultEffect": "Deny", "storeType": "memory"},
		"policies": []any{map[string]any{"name": "BucketFull", "document": map[string]any{"Version": "2012-10-17",
			"Statement": []any{map[string]any{"Effect": "Allow", "Action": []string{"s3:*"},
				"Resource": []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"}}}}}},
		"roles": []any{map[string]any{"roleName": "OwnRole", "roleArn": "arn:aws:iam::role/OwnRole", "attachedPolicies": []string{"BucketFull"},
			"trustPolicy": map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{"Effect": "Allow",
				"Principal": map[string]any{"AWS": "arn:aws:iam::000000000000:user/" + trustedUser}, "Action": []string{"sts:AssumeRole"}}}}}},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	conf := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(conf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &ownWeed{t: t, bin: bin, dir: dir, Endpoint: fmt.Sprintf("http://127.0.0.1:%d", s3Port), args: []string{
		"mini", "-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		fmt.Sprintf("-master.port=%d", master), fmt.Sprintf("-master.port.grpc=%d", master+10000),
		fmt.Sprintf("-volume.port=%d", volume), fmt.Sprintf("-volume.port.grpc=%d", volume+10000),
		fmt.Sprintf("-filer.port=%d", filer), fmt.Sprintf("-filer.port.grpc=%d", filer+10000),
		fmt.Sprintf("-s3.port=%d", s3Port), fmt.Sprintf("-s3.port.grpc=%d", s3Port+10000), "-s3.port.iceberg=0", "-s3.port.lance=0",
		fmt.Sprintf("-admin.port=%d", admin), fmt.Sprintf("-admin.port.grpc=%d", admin+10000), "-admin.port.legacy=0",
		"-webdav=false", "-admin.ui=false", "-master.telemetry=false",
		"-s3.config=" + conf, "-s3.iam.config=" + conf,
	}}
	w.Start()
	t.Cleanup(w.Stop)
	return w
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// Start starts the server and waits until S3 answers (403 to anonymous).
func (w *ownWeed) Start() {
	w.t.Helper()
	logf, err := os.OpenFile(filepath.Join(w.dir, "weed.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command(w.bin, w.args...)
	cmd.Dir = w.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + w.dir, "LANG=C"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.cmd, w.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(w.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(w.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusForbidden {
				return
			}
		}
		select {
		case <-w.done:
			w.t.Fatalf("weed exited during start-up:\n%s", w.log())
		default:
		}
		if time.Now().After(deadline) {
			w.Stop()
			w.t.Fatalf("own SeaweedFS did not answer on %s:\n%s", w.Endpoint, w.log())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Stop stops the server by its PID (SIGTERM, then SIGKILL) and waits.
func (w *ownWeed) Stop() {
	if w.cmd == nil {
		return
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
	}
	w.cmd = nil
}

func (w *ownWeed) log() string {
	b, _ := os.ReadFile(filepath.Join(w.dir, "weed.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// S3 is a client of the own server with the given keys.
func (w *ownWeed) S3(access, secret string) *s3.Client {
	return env.S3At(w.Endpoint, access, secret)
}

// createBucket creates bucket with the admin identity, retrying while the
// server finishes starting.
func (w *ownWeed) createBucket(access, secret, bucket string) {
	w.t.Helper()
	c := w.S3(access, secret)
	var err error
	for range 40 {
		if _, err = c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &bucket}); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	w.t.Fatalf("creating bucket %s on the own server: %v\n%s", bucket, err, w.log())
}
