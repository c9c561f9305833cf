//go:build integration

package integration_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// bundleUppy bundles entry, the JavaScript of a test's own page that
// imports Uppy's packages (@uppy/core, @uppy/aws-s3, @uppy/tus) as a user's
// app would, into one script with esbuild from the npm package dir
// testenv/uppy that apps-up.sh installed. The bundle is built per test run
// and never committed.
func bundleUppy(t *testing.T, entry string) []byte {
	t.Helper()
	modules := npmModules(t, "uppy", "UPLOAD_GATEWAY_UPPY_DIR", "Uppy and esbuild")
	cmd := exec.Command(filepath.Join(modules, ".bin", "esbuild"),
		"--bundle", "--format=iife", "--target=es2020", "--log-level=warning", "--sourcefile=page.js")
	// esbuild resolves the imports of stdin from its working directory.
	cmd.Dir = filepath.Dir(modules)
	cmd.Stdin = strings.NewReader(entry)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, errb.String())
	}
	return out.Bytes()
}

// TestUppyBundles checks that the pinned Uppy packages bundle: the pages of
// the browser tests are built this way.
func TestUppyBundles(t *testing.T) {
	js := bundleUppy(t, `import Uppy from "@uppy/core"
import AwsS3 from "@uppy/aws-s3"
import Tus from "@uppy/tus"
window.uppyClasses = [Uppy, AwsS3, Tus]
`)
	if !bytes.Contains(js, []byte("uppyClasses")) {
		t.Fatalf("the bundle (%d bytes) lacks the page's code", len(js))
	}
}
