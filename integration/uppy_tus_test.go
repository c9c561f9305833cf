//go:build integration

package integration_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// uppyTusPage is the test's own page: @uppy/core with @uppy/tus, as an
// app would use them, uploading the file chosen in #file to the tus
// endpoint of the page's origin in 4 MiB chunks. window.state says how
// far it got.
const uppyTusPage = `import Uppy from "@uppy/core"
import Tus from "@uppy/tus"

const state = window.state = { progress: 0, done: false, error: "", url: "", retries: 0, paused: false }
const uppy = window.uppy = new Uppy({ autoProceed: false })
uppy.use(Tus, {
  endpoint: location.origin + "/tus/",
  chunkSize: 4 * 1024 * 1024,
  headers: { Authorization: window.AUTH },
  // Long enough to outlast a gateway restart and lock_timeout.
  retryDelays: [0, 500, 1000, 1000, 2000, 2000, 2000, 3000, 3000, 3000, 5000, 5000],
  onShouldRetry: (err, attempt, options, next) => { state.retries++; return next(err) },
})
uppy.on("upload-progress", (file, p) => { state.progress = p.bytesUploaded })
uppy.on("upload-success", (file, resp) => { state.done = true; state.url = resp.uploadURL })
uppy.on("upload-error", (file, err) => { state.error = String(err) })
document.getElementById("file").addEventListener("change", (e) => {
  const f = e.target.files[0]
  window.fileID = uppy.addFile({ name: f.name, type: "application/octet-stream", data: f })
  uppy.upload()
})
`

// TestUppyTusResumesOnAnotherInstance: a page served by the gateway
// uploads 50 MiB with Uppy's @uppy/tus in headless Chromium, in 4 MiB
// chunks at about 10 MiB/s, and is interrupted twice, each time resuming
// on another gateway process on the same address (no state shared but
// S3). First the user pauses mid-PATCH (Uppy aborts the request), the
// instance is replaced and the user resumes: Uppy asks the new instance
// for the offset and goes on. Then, mid-PATCH again, the instance is
// killed (SIGKILL: its lock stays in S3) and a third one is started; Uppy
// retries on its own and finishes through it. The object equals the file,
// is SSE-KMS with its SHA-256 tag, and nothing is left under the
// temporary prefix.
func TestUppyTusResumesOnAnotherInstance(t *testing.T) {
	// arrange
	pageDir := t.TempDir()
	js := bundleUppy(t, uppyTusPage)
	html := fmt.Sprintf(`<!doctype html><meta charset="utf-8"><title>uppy tus</title>
<input type="file" id="file"><script>window.AUTH = %q</script><script src="page.js"></script>`, basicAuth("alice"))
	for name, data := range map[string][]byte{"index.html": []byte(html), "page.js": js} {
		if err := os.WriteFile(filepath.Join(pageDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gws, prefix, temp := tusGatewaysWith(t, 1, fmt.Sprintf("handle_path /page/* {\n\t\troot * %s\n\t\tfile_server\n\t}", pageDir), "lock_timeout 3s")
	gw := gws[0]
	const size = 50 * mib
	data := fileBytes(t, pdfMagic, 51, size)
	file := writeTestFile(t, "uppy-tus.bin", data)
	want := sha256.Sum256(data)
	ctx := newBrowser(t)

	type pageState struct {
		Progress int64  `json:"progress"`
		Done     bool   `json:"done"`
		Error    string `json:"error"`
		URL      string `json:"url"`
		Retries  int    `json:"retries"`
	}
	var st pageState
	var pausedAt, resumedAt, killedAt int64
	var restartTook time.Duration
	err := chromedp.Do(ctx,
		chromedp.Navigate(gw.URL+"/page/index.html"),
		chromedp.WaitReady(chromedp.ID("file")),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			_, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
				MatchedNetworkConditions: []*network.Conditions{{DownloadThroughput: -1, UploadThroughput: 10 << 20}},
			})
			return err
		}),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{file}),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			deadline := time.Now().Add(80 * time.Second)
			for time.Now().Before(deadline) {
				var err error
				if st, err = chromedp.Evaluate[pageState](`window.state`)(ctx, tg); err != nil {
					return err
				}
				if st.Done || st.Error != "" {
					return nil
				}
				// First interruption: the user pauses in the middle of a
				// chunk past 10 MiB; the instance is replaced while paused.
				if pausedAt == 0 && st.Progress > 10*mib && st.Progress%(4*mib) > mib {
					pausedAt = st.Progress
					if _, err := chromedp.Evaluate[bool](`uppy.pauseResume(window.fileID)`)(ctx, tg); err != nil {
						return fmt.Errorf("pausing: %w", err)
					}
					time.Sleep(300 * time.Millisecond)
					gw.Kill()
					if err := gw.Restart(); err != nil {
						return fmt.Errorf("starting a second instance: %w", err)
					}
					if st, err = chromedp.Evaluate[pageState](`window.state`)(ctx, tg); err != nil {
						return err
					}
					resumedAt = st.Progress
					if _, err := chromedp.Evaluate[bool](`uppy.pauseResume(window.fileID)`)(ctx, tg); err != nil {
						return fmt.Errorf("resuming: %w", err)
					}
					continue
				}
				// Second interruption: the instance is killed in the middle
				// of a chunk past 30 MiB.
				if pausedAt != 0 && killedAt == 0 && st.Progress > 30*mib && st.Progress%(4*mib) > mib {
					killedAt = st.Progress
					gw.Kill()
					start := time.Now()
					if err := gw.Restart(); err != nil {
						return fmt.Errorf("starting a third instance: %w", err)
					}
					restartTook = time.Since(start)
				}
				time.Sleep(20 * time.Millisecond)
			}
			return context.DeadlineExceeded
		}),
	)

	// assert
	if err != nil || !st.Done {
		t.Fatalf("Uppy did not finish: %v; state %+v", err, st)
	}
	if pausedAt == 0 || killedAt == 0 {
		t.Fatalf("interruptions: paused at %d, killed at %d bytes; want both", pausedAt, killedAt)
	}
	t.Logf("paused with %d bytes sent (%d reported while paused) and resumed on a second instance; "+
		"killed the second with %d bytes sent; a third served after %v; Uppy retried %d times and finished",
		pausedAt, resumedAt, killedAt, restartTook.Round(time.Millisecond), st.Retries)
	if st.Retries == 0 {
		t.Error("Uppy never retried: the upload was not interrupted")
	}
	if !strings.HasPrefix(st.URL, gw.URL+"/tus/") {
		t.Errorf("upload URL %q", st.URL)
	}
	key := onlyObject(t, prefix)
	sum, n := objectSHA256(t, key)
	if n != size || sum != hex.EncodeToString(want[:]) {
		t.Errorf("stored %d bytes with SHA-256 %s, want %d bytes %x", n, sum, size, want)
	}
	head := assertEncrypted(t, key)
	if head.Metadata["uploaded-by"] != "alice" || head.Metadata["original-name"] != "uppy-tus.bin" {
		t.Errorf("object metadata %v", head.Metadata)
	}
	assertSHA256Tags(t, key, data)
	assertNothingLeft(t, temp)
}
