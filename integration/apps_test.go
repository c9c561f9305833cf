//go:build integration

package integration_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// An app is one of the applications the pass-mode tests put behind the
// gateway, each echoing what its framework's own form parser made of the
// rewritten form. integration/testenv/apps-up.sh installs them (scripts/test
// runs it).
type app string

const (
	appPHP      app = "php"      // php -S testdata/php/dump.php: {"post": $_POST, "files": $_FILES, …}
	appRack     app = "rack"     // ruby testdata/rack/dump.rb: {"params": Rack::Request#POST}
	appWerkzeug app = "werkzeug" // python3 testdata/werkzeug/dump.py: {"form": {name: [values]}, "order": […]}
	appExpress  app = "express"  // node testenv/express/server.js (multer): {"body": req.body, "files": […]}
	// A small legacy PHP app with sessions, pages and a progress bar
	// (testdata/php/legacy/index.php), for the browser tests and the
	// README's walkthrough.
	appLegacyPHP app = "legacy-php"
)

// startApp starts a on a free loopback port, waits until it answers, and
// stops it by its PID when the test ends. It fails the test, with what to
// run, when the app is not installed.
func startApp(t *testing.T, a app) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ln.Close()

	abs := func(p string) string {
		p, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	need := func(bin string) string {
		p, err := exec.LookPath(bin)
		if err != nil {
			t.Fatalf("%s is not installed (integration/testenv/apps-up.sh installs it): %v", bin, err)
		}
		return p
	}
	var cmd *exec.Cmd
	switch a {
	case appPHP:
		cmd = exec.Command(need("php"), "-n", "-S", addr, abs("testdata/php/dump.php"))
	case appLegacyPHP:
		// Large enough for the form benchmark's 100 MiB file sent straight
		// to the app (PHP's defaults take 8 MiB posts).
		cmd = exec.Command(need("php"), "-n", "-d", "post_max_size=256M", "-d", "upload_max_filesize=256M",
			"-S", addr, abs("testdata/php/legacy/index.php"))
	case appRack:
		cmd = exec.Command(need("ruby"), abs("testdata/rack/dump.rb"), port)
	case appWerkzeug:
		// Debian's python3 has python3-werkzeug, whatever python3 comes
		// first on PATH.
		py := "/usr/bin/python3"
		if _, err := os.Stat(py); err != nil {
			py = need("python3")
		}
		cmd = exec.Command(py, abs("testdata/werkzeug/dump.py"), port)
	case appExpress:
		cmd = exec.Command(need("node"), abs("testenv/express/server.js"), port)
		cmd.Env = append(os.Environ(), "NODE_PATH="+expressModules(t))
	default:
		t.Fatalf("unknown app %q", a)
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "UGW_PASS_SECRET="+passSecret)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the %s app: %v", a, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s app logs:\n%s", a, logs.String())
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s app did not answer on %s: %v\n%s", a, addr, err, logs.String())
		}
	}
}

// expressModules is the node_modules directory apps-up.sh installed Express
// and multer into.
func expressModules(t *testing.T) string {
	return npmModules(t, "express", "UPLOAD_GATEWAY_EXPRESS_DIR", "express and multer")
}

// npmModules is the node_modules directory apps-up.sh's npm_install put the
// package dir testenv/<name> into: $<envDir> if set, else
// ~/.cache/upload-gateway/<name>-<hash of its lock file>. what names it in
// the failure message.
func npmModules(t *testing.T, name, envDir, what string) string {
	t.Helper()
	dir := os.Getenv(envDir)
	if dir == "" {
		lock, err := os.ReadFile(filepath.Join("testenv", name, "package-lock.json"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(lock)
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(home, ".cache", "upload-gateway", name+"-"+hex.EncodeToString(sum[:])[:16])
	}
	if _, err := os.Stat(filepath.Join(dir, ".installed")); err != nil {
		t.Fatalf("%s is not installed in %s (run integration/testenv/apps-up.sh): %v", what, dir, err)
	}
	return filepath.Join(dir, "node_modules")
}
