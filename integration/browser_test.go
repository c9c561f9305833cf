//go:build integration

package integration_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// artefactDir is where the browser tests save their screenshots
// (.testenv/ is git-ignored).
const artefactDir = "../.testenv/artefacts"

// newBrowser starts headless Chromium (Debian's chromium, which
// integration/testenv/apps-up.sh installs) with a fresh profile, and stops
// it when the test ends. Its actions must be done within 90 seconds.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	return newBrowserWithin(t, 90*time.Second)
}

// newBrowserWithin is newBrowser for a test whose actions take up to
// timeout.
func newBrowserWithin(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	bin := os.Getenv("UGW_CHROMIUM")
	if bin == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		t.Fatal("chromium is not installed (integration/testenv/apps-up.sh installs it; or set UGW_CHROMIUM)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// The gateway's certificate comes from its internal test CA.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1000, 700),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	// The first run starts the browser; it lives as long as bctx, which
	// must not have a timeout.
	if err := chromedp.Do(bctx); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(bctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// screenshot saves a PNG of the page as <test name>-<name>.png in
// artefactDir.
func screenshot(t *testing.T, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tg) // quality 100 is PNG, below is JPEG
		if err != nil {
			return err
		}
		if err := os.MkdirAll(artefactDir, 0o755); err != nil {
			return err
		}
		file := filepath.Join(artefactDir, strings.ReplaceAll(t.Name(), "/", "-")+"-"+name+".png")
		t.Logf("screenshot: %s", file)
		return os.WriteFile(file, png, 0o644)
	})
}

// texts reads the text of the elements with these ids.
func texts(t *testing.T, ctx context.Context, ids ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, id := range ids {
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("reading #%s: %v", id, err)
		}
		out[id] = v
	}
	return out
}

// writeTestFile writes data to a file named name in a new directory.
func writeTestFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A real browser, signed in to the PHP app with its session cookie,
// posts the app's own HTML form through the gateway: the app's session
// check lets it in, the file goes to S3 under the user's id, and the page
// the app renders shows the fields it got in place of the file. A file of
// a type the route does not take sends the browser back to the form, which
// says why; nothing of it is stored.
func TestBrowserLegacyFormWithSessionCookie(t *testing.T) {
	prefix := testPrefix(t)
	app := startApp(t, appLegacyPHP)
	gw := startGateway(t, sessionAppSite(prefix, app, "allowed_types text/plain image/png",
		"on_error redirect /attachments/new?error={http.upload_gateway.error_status}"))
	ctx := newBrowser(t)
	data := []byte(strings.Repeat("minutes of the meeting\n", 4000))
	file := writeTestFile(t, "minutes.txt", data)

	err := chromedp.Do(ctx,
		chromedp.Navigate(gw.URL+"/login?user=alice"),
		chromedp.WaitVisible(chromedp.ID("user")),
		chromedp.Navigate(gw.URL+"/attachments/new"),
		chromedp.WaitVisible(chromedp.ID("file")),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{file}),
		screenshot(t, "1-form"),
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.ID("received")),
		screenshot(t, "2-received"),
	)
	if err != nil {
		t.Fatal(err)
	}
	got := texts(t, ctx, "f-attachment_key", "f-title", "f-attachment_name", "files")
	key, title, name, files := got["f-attachment_key"], got["f-title"], got["f-attachment_name"], got["files"]
	if !strings.HasPrefix(key, prefix+"users/alice/") || title != "holiday" || name != "minutes.txt" || files != "0 file bodies" {
		t.Fatalf("the app showed key %q title %q name %q, %q", key, title, name, files)
	}
	sum, size := objectSHA256(t, key)
	want := sha256.Sum256(data)
	if sum != hex.EncodeToString(want[:]) || size != int64(len(data)) {
		t.Errorf("object %s: sha256 %s size %d, want the file's", key, sum, size)
	}

	// A type the route refuses: back on the form page, with the reason.
	err = chromedp.Do(ctx,
		chromedp.Navigate(gw.URL+"/attachments/new"),
		chromedp.WaitVisible(chromedp.ID("file")),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{writeTestFile(t, "tool.exe", []byte("MZ\x90\x00 not really a program"))}),
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.ID("error")),
		screenshot(t, "3-refused"),
	)
	if err != nil {
		t.Fatal(err)
	}
	errText := texts(t, ctx, "error")["error"]
	location, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(location, "/attachments/new?error=415") || !strings.Contains(errText, "not allowed") {
		t.Errorf("after the refused form: %s %q", location, errText)
	}
	assertNothingStoredBesides(t, prefix, 1)
}

// A page with an nginx-upload-progress-style progress bar: the form posts
// into a hidden iframe with an X-Progress-ID while the page polls the
// gateway's progress path. The upload is throttled in the browser so that
// the bar has time to move; the polls see it grow, then done.
func TestBrowserProgressBar(t *testing.T) {
	prefix := testPrefix(t)
	app := startApp(t, appLegacyPHP)
	gw := startGateway(t, sessionAppSite(prefix, app))
	ctx := newBrowser(t)
	const size = 6 << 20
	file := writeTestFile(t, "video.bin", fileBytes(t, "", 21, size))

	type poll struct {
		State    string `json:"state"`
		Received int64  `json:"received"`
		Size     int64  `json:"size"`
	}
	var seen []poll
	var midShot bool
	err := chromedp.Do(ctx,
		chromedp.Navigate(gw.URL+"/login?user=alice"),
		chromedp.WaitVisible(chromedp.ID("user")),
		chromedp.Navigate(gw.URL+"/attachments/progress"),
		chromedp.WaitVisible(chromedp.ID("file")),
		// About 2 MiB/s up: three seconds for the file.
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			_, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
				MatchedNetworkConditions: []*network.Conditions{{DownloadThroughput: -1, UploadThroughput: 2 << 20}},
			})
			return err
		}),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{file}),
		chromedp.Click(chromedp.ID("send")),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				var err error
				if seen, err = chromedp.Evaluate[[]poll](`window.seen`)(ctx, tg); err != nil {
					return err
				}
				if n := len(seen); n > 0 {
					last := seen[n-1]
					if !midShot && last.State == "uploading" && last.Received > size/4 {
						midShot = true
						if _, err := screenshot(t, "1-uploading")(ctx, tg); err != nil {
							return err
						}
					}
					if last.State == "done" || last.State == "error" {
						return nil
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			return context.DeadlineExceeded
		}),
		screenshot(t, "2-done"),
	)
	if err != nil {
		t.Fatalf("%v; polls seen: %+v", err, seen)
	}
	var uploading []int64
	for _, p := range seen {
		if p.State == "uploading" {
			if p.Size < size || p.Received > p.Size {
				t.Errorf("poll %+v: size should be the form's length (> %d)", p, size)
			}
			uploading = append(uploading, p.Received)
		}
	}
	if last := seen[len(seen)-1]; last.State != "done" {
		t.Fatalf("last poll %+v, want done", last)
	}
	if len(uploading) < 3 || uploading[len(uploading)-1] <= uploading[0] {
		t.Errorf("the bar did not move: received %v", uploading)
	}
	t.Logf("%d polls; received while uploading: %v", len(seen), uploading)
	assertNothingStoredBesides(t, prefix, 1)
}
