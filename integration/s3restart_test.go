//go:build integration

package integration_test

// Its test kills and restarts the shared SeaweedFS, so it must not run while
// other tests use the server: it runs only when UGW_DISRUPTIVE=1, and
// scripts/test runs it alone, after the rest of the suite.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// procInfo is what it takes to start a process again exactly as it was.
type procInfo struct {
	argv []string
	env  []string
	dir  string
}

func readProc(t *testing.T, pid int) procInfo {
	t.Helper()
	split := func(name string) []string {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
		if err != nil {
			t.Fatalf("reading /proc/%d/%s: %v", pid, name, err)
		}
		return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}
	dir, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return procInfo{argv: split("cmdline"), env: split("environ"), dir: dir}
}

// SeaweedFS is killed (SIGKILL) in the middle of an upload and started again:
// the client gets an error, and once S3 is back the gateway's retried abort
// leaves nothing behind.
func TestS3KilledAndRestartedMidUpload(t *testing.T) {
	if os.Getenv("UGW_DISRUPTIVE") != "1" {
		t.Skip("restarts the shared SeaweedFS: set UGW_DISRUPTIVE=1 and run it alone (scripts/test does)")
	}
	pid, err := strconv.Atoi(os.Getenv("UGW_WEED_PID"))
	workdir := os.Getenv("UGW_TESTENV_DIR")
	if err != nil || workdir == "" {
		t.Skip("UGW_WEED_PID / UGW_TESTENV_DIR not set: the SeaweedFS process is unknown")
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err != nil || !strings.Contains(string(b), "weed") {
		t.Skipf("process %d is not SeaweedFS", pid)
	}
	weed := readProc(t, pid)
	prefix := testPrefix(t)
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{"part_size 5MiB", "s3_timeout 10s", "abort_timeout 3m"}}.block())

	// The upload is under way when S3 dies.
	pr, pw := io.Pipe()
	killed := make(chan struct{})
	go func() {
		src := harness.NewRandomReader(31, 200*mib)
		if _, err := io.CopyN(pw, src, 20*mib); err != nil {
			pw.CloseWithError(err)
			return
		}
		waitForMultipartUpload(t, prefix)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		close(killed)
		_, err := io.Copy(pw, src)
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest(http.MethodPut, gw.URL+"/s3-killed.bin", pr)
	resp, err := gw.Client.Do(req)
	pr.Close()
	<-killed
	if err == nil {
		r := decodeResponse(t, resp)
		if resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("status %d %+v, want 502 or 504", resp.StatusCode, r)
		}
		t.Logf("client got %d %s", resp.StatusCode, r.Error.Code)
	} else {
		t.Logf("client saw the connection end: %v", err)
	}

	// Start SeaweedFS again exactly as it ran, and record its PID where the
	// test environment's down.sh looks for it.
	logf, err := os.OpenFile(filepath.Join(workdir, "weed.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	for i := 0; i < 50; i++ { // the killed process must release its ports
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd := exec.Command(weed.argv[0], weed.argv[1:]...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = weed.dir, weed.env, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("restarting SeaweedFS: %v", err)
	}
	newPID := cmd.Process.Pid
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(filepath.Join(workdir, "weed.pid"), []byte(strconv.Itoa(newPID)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("SeaweedFS restarted as pid %d", newPID)

	// Once S3 takes writes again (its master warms up first), the abort that
	// the gateway kept retrying has gone through.
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		key := prefix + "probe"
		_, err := env.S3().PutObject(ctx, &s3.PutObjectInput{Bucket: &env.Bucket, Key: &key, Body: strings.NewReader("x")})
		if err == nil {
			_, _ = env.S3().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &env.Bucket, Key: &key})
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SeaweedFS did not come back: %v", err)
		}
		time.Sleep(time.Second)
	}
	deadline = time.Now().Add(90 * time.Second)
	for {
		uploads, objects, err := env.Leftovers(ctx, prefix)
		if err == nil && len(uploads) == 0 && len(objects) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind after the restart: uploads %v, objects %v, err %v\n%s", uploads, objects, err, gw.Logs())
		}
		time.Sleep(time.Second)
	}
}
