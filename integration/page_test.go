//go:build integration

package integration_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
	"github.com/caddy-upload-gateway/upload-gateway/internal/fileapi"
)

// pageAPI is the file API behind the upload page in these tests: 5 MiB
// parts (so single uploads up to 5 MiB), files up to 48 MiB, text and
// binary files only.
func pageAPI(prefix string) string {
	return apiBlock(prefix, "max_file_size 48MiB", "allowed_types text/plain application/octet-stream")
}

// pageDirective is the upload page, allowed to send files to the test S3
// server.
const pageDirective = `upload_page {
		title "Team uploads"
		connect_origins {env.UGW_S3_ENDPOINT}
	}`

// pageTab is the upload page in a headless Chromium tab, with what the
// tab logged and the requests it sent to S3.
type pageTab struct {
	t   *testing.T
	ctx context.Context
	gw  *harness.Gateway

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
	s3      []*s3Request
	byID    map[network.RequestID]*s3Request
}

// s3Request is a request the page sent straight to S3.
type s3Request struct {
	method, url string
	status      int64 // 0 until answered
}

// openPage starts Chromium, records the tab's console and its requests to
// S3, and loads the page.
func openPage(t *testing.T, gw *harness.Gateway) *pageTab {
	t.Helper()
	p := &pageTab{t: t, ctx: newBrowserWithin(t, 5*time.Minute), gw: gw, byID: map[network.RequestID]*s3Request{}}
	messages := chromedp.Console(p.ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, m)
			p.mu.Unlock()
		}
	}()
	s3Endpoint := os.Getenv("UGW_S3_ENDPOINT")
	err := chromedp.Listen(p.ctx, func(ev any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if strings.HasPrefix(e.Request.URL, s3Endpoint) && e.Request.Method != http.MethodOptions {
				r := &s3Request{method: e.Request.Method, url: e.Request.URL}
				p.s3 = append(p.s3, r)
				p.byID[e.RequestID] = r
			}
		case *network.EventResponseReceived:
			if r := p.byID[e.RequestID]; r != nil {
				r.status = e.Response.Status
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	p.do(
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
			return err
		}),
		chromedp.Navigate(gw.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("login")),
	)
	return p
}

// do runs actions in the tab, failing the test on an error.
func (p *pageTab) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatalf("%v\npage messages: %q", err, p.messages())
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](p *pageTab, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitFor waits until a JavaScript expression is true in the page.
func (p *pageTab) waitFor(what, expr string, timeout time.Duration) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		p.t.Fatalf("waiting for %s: %v\npage messages: %q", what, err, p.messages())
	}
}

// messages returns the page's messages, newest first.
func (p *pageTab) messages() []string {
	v, _ := chromedp.Run(p.ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#messages .msg")].map(e => e.textContent)`))
	return v
}

// waitMessage waits for a page message that contains every one of parts.
func (p *pageTab) waitMessage(parts ...string) string {
	p.t.Helper()
	expr := `[...document.querySelectorAll("#messages .msg")].some(e => ` +
		strings.Join(mapStrings(parts, func(s string) string { return fmt.Sprintf("e.textContent.includes(%q)", s) }), " && ") + `)`
	p.waitFor(fmt.Sprintf("a message with %q", parts), expr, 30*time.Second)
	for _, m := range p.messages() {
		if containsAll(m, parts) {
			return m
		}
	}
	return ""
}

func mapStrings(in []string, f func(string) string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = f(s)
	}
	return out
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// signIn fills in the login form and waits for the signed-in page.
func (p *pageTab) signIn(email, password string) {
	p.t.Helper()
	p.do(
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SetValue(chromedp.ID("email"), email),
		chromedp.SetValue(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("app")),
	)
	p.waitFor("the file list", `document.querySelector("#files tbody").children.length > 0 || !document.getElementById("files-empty").hidden`, 15*time.Second)
}

// dashboardInput is Uppy's Dashboard file input (not the folder one).
const dashboardInput = chromedp.CSS(`input.uppy-Dashboard-input[name="files[]"]:not([webkitdirectory])`)

// addFiles picks files in the Dashboard, as a drop or the file dialog would.
func (p *pageTab) addFiles(paths ...string) {
	p.t.Helper()
	p.do(chromedp.SetUploadFiles(dashboardInput, paths))
}

// fileNames returns the names in the page's file list.
func (p *pageTab) fileNames() []string {
	return eval[[]string](p, `[...document.querySelectorAll("#files tbody tr")].map(r => r.cells[0].textContent)`)
}

// waitListed waits until the file list shows every one of names.
func (p *pageTab) waitListed(timeout time.Duration, names ...string) {
	p.t.Helper()
	expr := `(() => { const shown = [...document.querySelectorAll("#files tbody tr")].map(r => r.cells[0].textContent);
		return ` + strings.Join(mapStrings(names, func(s string) string { return fmt.Sprintf("shown.includes(%q)", s) }), " && ") + ` })()`
	p.waitFor(fmt.Sprintf("%q in the file list", names), expr, timeout)
}

// s3Requests returns a copy of the requests the page sent to S3 so far.
func (p *pageTab) s3Requests() []s3Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]s3Request, len(p.s3))
	for i, r := range p.s3 {
		out[i] = *r
	}
	return out
}

// partPUTs counts the part uploads in reqs that S3 answered with 200.
func partPUTs(reqs []s3Request) (sent, ok int) {
	for _, r := range reqs {
		if r.method == http.MethodPut && strings.Contains(r.url, "partNumber=") {
			sent++
			if r.status == http.StatusOK {
				ok++
			}
		}
	}
	return sent, ok
}

// throttleUploads limits what the tab sends to bytesPerSecond (-1: no
// limit).
func (p *pageTab) throttleUploads(bytesPerSecond float64) {
	p.t.Helper()
	p.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{DownloadThroughput: -1, UploadThroughput: bytesPerSecond}},
		})
		return err
	}))
}

// problems returns the console messages that show a broken page: an
// uncaught exception or a Content-Security-Policy violation.
func (p *pageTab) problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, m := range p.console {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Refused to") {
			out = append(out, m.String())
		}
	}
	return out
}

// storedKey returns the key of the one object under prefix whose last
// segment is name.
func storedKey(t *testing.T, prefix, name string) string {
	t.Helper()
	out, err := env.S3().ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(env.Bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		if strings.HasSuffix(aws.ToString(o.Key), "/"+name) {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	if len(keys) != 1 {
		t.Fatalf("objects named %s under %s: %q, want one", name, prefix, keys)
	}
	return keys[0]
}

// assertStoredFile checks the object named name under prefix: SSE-KMS,
// the source's bytes; it returns the key.
func assertStoredFile(t *testing.T, prefix, name string, data []byte) string {
	t.Helper()
	key := storedKey(t, prefix, name)
	assertEncrypted(t, key)
	sum, size := objectSHA256(t, key)
	want := sha256.Sum256(data)
	if sum != hex.EncodeToString(want[:]) || size != int64(len(data)) {
		t.Errorf("%s: sha256 %s size %d, want the source's %x (%d bytes)", key, sum, size, want, len(data))
	}
	return key
}

// assertNoOpenUploads checks that no multipart upload is open under prefix.
func assertNoOpenUploads(t *testing.T, prefix string) {
	t.Helper()
	uploads, _, err := env.Leftovers(t.Context(), prefix)
	if err != nil || len(uploads) != 0 {
		t.Errorf("open multipart uploads under %s: %v %v", prefix, uploads, err)
	}
}

// textBytes returns n bytes of plain text (lines of a meeting's minutes),
// so that the gateway's content check on confirm agrees with text/plain.
func textBytes(n int) []byte {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%06d the meeting agreed on item %d and moved on\n", i, i%97)
	}
	return []byte(b.String()[:n])
}

// assertConfirmed checks that the page confirmed the single upload of key:
// the gateway tagged it when it checked it.
func assertConfirmed(t *testing.T, key string) {
	t.Helper()
	if tags := objectTags(t, key); tags[fileapi.ConfirmedTag] == "" {
		t.Errorf("%s was not confirmed: tags %v", key, tags)
	}
}

// A person opens the gateway's upload page, signs in (a wrong password
// first: the server's message is shown), and uploads with Uppy's
// Dashboard: a 1 MiB text file goes to S3 in one POST (then confirmed, so
// the gateway checks and counts it), a 40 MiB file in eight 5 MiB parts.
// A 50 MiB file (over the limit) and a PNG (not an allowed type) are
// refused on the page with a message and never sent. A second 40 MiB
// upload is paused mid-way on a slow link and resumed. A "text" file that
// is binary goes to S3 but the gateway refuses it on confirm and deletes
// it; the page says why. The person downloads a file and deletes another;
// signed in as a viewer, they see the files but no delete button. Every
// object is in S3 under the user's prefix, encrypted with SSE-KMS, byte
// for byte the source, with no multipart upload left open; the page logs
// no CSP violation.
func TestUploadPageUserStory(t *testing.T) {
	prefix := testPrefix(t)
	uploader := idpUser{email: "uploader@example.com", password: "uploader-password", groups: []string{"uploader"}}
	viewer := idpUser{email: "viewer@example.com", password: "viewer-password", groups: []string{"viewer"}}
	idp := newLocalIdP(t, uploader, viewer)
	gw := startGateway(t, pageDirective+"\n\t"+idp.site([]string{"session_cookie"}, pageAPI(prefix)))

	small := textBytes(1 << 20)
	big := fileBytes(t, "", 42, 40<<20)
	again := fileBytes(t, "", 43, 40<<20)
	smallFile := writeTestFile(t, "notes.txt", small)
	bigFile := writeTestFile(t, "video.bin", big)
	againFile := writeTestFile(t, "backup.bin", again)
	hugeFile := writeTestFile(t, "huge.bin", fileBytes(t, "", 44, 50<<20))
	pngFile := writeTestFile(t, "photo.png", fileBytes(t, "\x89PNG\r\n\x1a\n", 45, 4096))
	fakeFile := writeTestFile(t, "fake.txt", fileBytes(t, "", 48, 64<<10))

	// The page, its headers, and a failed sign-in.
	p := openPage(t, gw)
	resp, err := gw.Client.Get(gw.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self' "+os.Getenv("UGW_S3_ENDPOINT")) {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	p.do(screenshot(t, "1-sign-in"))
	p.do(
		chromedp.SetValue(chromedp.ID("email"), uploader.email),
		chromedp.SetValue(chromedp.ID("password"), "not-the-password"),
		chromedp.Click(chromedp.ID("signin")),
	)
	bad := p.waitMessage("Sign-in failed")
	p.signIn(uploader.email, uploader.password)
	who := texts(t, p.ctx, "user", "role")
	if who["user"] != uploader.email || who["role"] != "uploader" {
		t.Errorf("signed in as %q, role %q", who["user"], who["role"])
	}
	t.Logf("wrong password: %q", bad)

	// 1 MiB in one request, 40 MiB in parts.
	p.addFiles(smallFile, bigFile)
	p.do(screenshot(t, "2-added"), chromedp.Click(chromedp.CSS("button.uppy-StatusBar-actionBtn--upload")))
	p.waitListed(2*time.Minute, "notes.txt", "video.bin")
	p.waitMessage("2 file(s) uploaded")
	p.do(chromedp.WaitVisible(chromedp.CSS("button.uppy-StatusBar-actionBtn--done")), screenshot(t, "3-uploaded"))
	reqs := p.s3Requests()
	var posts int
	for _, r := range reqs {
		if r.method == http.MethodPost && r.status/100 == 2 {
			posts++
		}
	}
	sent, ok := partPUTs(reqs)
	if posts != 1 || sent != 8 || ok != 8 {
		t.Errorf("requests to S3: %d POSTs, %d part PUTs (%d answered 200); want 1 POST (1 MiB) and 8 parts (40 MiB)", posts, sent, ok)
	}
	assertConfirmed(t, assertStoredFile(t, prefix, "notes.txt", small))
	assertStoredFile(t, prefix, "video.bin", big)
	assertNoOpenUploads(t, prefix)

	// Too large, and a type the gateway does not take: refused on the page.
	before := len(p.s3Requests())
	p.do(chromedp.Click(chromedp.CSS("button.uppy-StatusBar-actionBtn--done")))
	p.addFiles(hugeFile)
	tooBig := p.waitMessage("huge.bin")
	p.addFiles(pngFile)
	wrongType := p.waitMessage("photo.png")
	p.do(screenshot(t, "4-refused"))
	if !strings.Contains(tooBig, "48 MB") && !strings.Contains(tooBig, "48 MiB") {
		t.Errorf("over-size message %q does not name the limit", tooBig)
	}
	if !strings.Contains(wrongType, "text/plain") {
		t.Errorf("type message %q does not name the allowed types", wrongType)
	}
	if n := len(p.s3Requests()); n != before {
		t.Errorf("the refused files sent %d requests to S3", n-before)
	}
	t.Logf("refused: %q, %q", tooBig, wrongType)

	// A multipart upload paused mid-way on a slow link, then resumed.
	p.throttleUploads(4 << 20)
	before = len(p.s3Requests())
	p.addFiles(againFile)
	p.do(chromedp.Click(chromedp.CSS("button.uppy-StatusBar-actionBtn--upload")))
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, ok := partPUTs(p.s3Requests()[before:]); ok >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("two parts were not uploaded in time: %+v", p.s3Requests()[before:])
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.do(chromedp.Click(chromedp.CSS(`button[data-cy="togglePauseResume"]`)))
	time.Sleep(time.Second) // the part in flight is aborted
	p.do(screenshot(t, "5-paused"))
	pausedAt, _ := partPUTs(p.s3Requests()[before:])
	time.Sleep(2 * time.Second)
	if sent, _ := partPUTs(p.s3Requests()[before:]); sent != pausedAt {
		t.Errorf("parts sent while paused: %d → %d", pausedAt, sent)
	}
	p.throttleUploads(-1)
	p.do(chromedp.Click(chromedp.CSS(`button[data-cy="togglePauseResume"]`)))
	p.waitListed(2*time.Minute, "backup.bin")
	sent, ok = partPUTs(p.s3Requests()[before:])
	t.Logf("paused after %d part requests; %d part requests in all, %d answered 200", pausedAt, sent, ok)
	if ok != 8 || pausedAt >= 8 {
		t.Errorf("the resumed upload: %d parts answered 200 (paused after %d requests), want 8 after a pause mid-way", ok, pausedAt)
	}
	assertStoredFile(t, prefix, "backup.bin", again)
	assertNoOpenUploads(t, prefix)

	// Binary bytes in a .txt file: S3 takes them, the gateway's check on
	// confirm does not.
	p.do(chromedp.Click(chromedp.CSS("button.uppy-StatusBar-actionBtn--done")))
	p.addFiles(fakeFile)
	p.do(chromedp.Click(chromedp.CSS("button.uppy-StatusBar-actionBtn--upload")))
	fake := p.waitMessage("fake.txt", "does not match")
	p.waitFor("fake.txt marked as failed in the Dashboard", `document.querySelector(".uppy-Dashboard-Item.is-error") !== null`, 10*time.Second)
	p.do(screenshot(t, "6-refused-on-confirm"))
	t.Logf("refused on confirm: %q", fake)
	if slices.Contains(p.fileNames(), "fake.txt") {
		t.Error("fake.txt is in the file list")
	}
	assertNothingStoredBesides(t, prefix, 3)

	// Download one file, delete another.
	downloads := t.TempDir()
	p.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads,
		})
		return err
	}))
	p.do(chromedp.Click(chromedp.CSS(`#files tr[data-file-name="video.bin"] button.download`)))
	got := waitDownload(t, downloads, int64(len(big)))
	if sum, want := sha256.Sum256(got), sha256.Sum256(big); sum != want {
		t.Errorf("the downloaded video.bin differs from the source")
	}
	p.do(
		chromedp.Click(chromedp.CSS(`#files tr[data-file-name="notes.txt"] button.delete`)),
		chromedp.Click(chromedp.CSS(`#files tr[data-file-name="notes.txt"] button.delete`)),
	)
	p.waitMessage("notes.txt deleted")
	p.waitFor("notes.txt gone from the list", `![...document.querySelectorAll("#files tbody tr")].some(r => r.cells[0].textContent === "notes.txt")`, 15*time.Second)
	p.do(screenshot(t, "7-after"))
	if names := p.fileNames(); !slices.Equal(sorted(names), []string{"backup.bin", "video.bin"}) {
		t.Errorf("file list %q after the delete", names)
	}
	assertNothingStoredBesides(t, prefix, 2)

	// A viewer sees every file, may download but not delete or upload.
	p.do(chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("login")))
	p.signIn(viewer.email, viewer.password)
	p.waitListed(15*time.Second, "backup.bin", "video.bin")
	p.do(screenshot(t, "8-viewer"))
	if n := eval[int](p, `document.querySelectorAll("#files button.delete").length`); n != 0 {
		t.Errorf("the viewer sees %d delete buttons", n)
	}
	if n := eval[int](p, `document.querySelectorAll("#files button.download").length`); n != 2 {
		t.Errorf("the viewer sees %d download buttons, want 2", n)
	}
	if eval[bool](p, `document.querySelector(".uppy-Dashboard") !== null && !document.getElementById("dashboard").hidden`) {
		t.Error("the viewer sees the upload dashboard")
	}
	if probs := p.problems(); len(probs) > 0 {
		t.Errorf("console: %q", probs)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// waitDownload waits for a finished download of size bytes in dir.
func waitDownload(t *testing.T, dir string, size int64) []byte {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			info, err := e.Info()
			if err != nil || info.Size() != size || strings.HasSuffix(e.Name(), ".crdownload") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("no download of %d bytes in %s", size, dir)
	return nil
}

// The same page signs in against Cognito (the login API with a Cognito
// user pool behind it): the session cookie works the same way, and the
// upload lands under the Cognito user's prefix. When the session cookie
// has gone (as when the token expires), the page renews the session with
// the refresh cookie and the next upload goes through unnoticed.
func TestUploadPageCognitoLogin(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, fmt.Sprintf(`%s
	upload_auth {
		issuer {env.UGW_COGNITO_ISSUER}
		jwks_url {env.UGW_COGNITO_JWKS_URL}
		client_id {env.UGW_COGNITO_CLIENT_ID}
		cognito_endpoint {env.UGW_COGNITO_ENDPOINT}
		session_cookie
	}
	%s`, pageDirective, pageAPI(prefix)))
	data := textBytes(1 << 20)
	file := writeTestFile(t, "minutes.txt", data)

	p := openPage(t, gw)
	p.signIn(cognitoEnv(t, "UPLOADER_EMAIL"), cognitoEnv(t, "UPLOADER_PASSWORD"))
	if who := texts(t, p.ctx, "user", "role"); who["user"] != cognitoEnv(t, "UPLOADER_EMAIL") || who["role"] != "uploader" {
		t.Errorf("signed in as %q", who)
	}
	p.addFiles(file)
	p.do(chromedp.Click(chromedp.CSS("button.uppy-StatusBar-actionBtn--upload")))
	p.waitListed(time.Minute, "minutes.txt")
	assertConfirmed(t, assertStoredFile(t, prefix, "minutes.txt", data))

	p.do(
		chromedp.Click(chromedp.CSS("button.uppy-StatusBar-actionBtn--done")),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: "ugw_session", URL: gw.URL + "/"})
			return err
		}),
	)
	more := textBytes(300 << 10)
	p.addFiles(writeTestFile(t, "agenda.txt", more))
	p.do(chromedp.Click(chromedp.CSS("button.uppy-StatusBar-actionBtn--upload")))
	p.waitListed(time.Minute, "agenda.txt", "minutes.txt")
	assertConfirmed(t, assertStoredFile(t, prefix, "agenda.txt", more))
	if msgs := p.messages(); slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, "session") || strings.Contains(m, "agenda.txt") }) {
		t.Errorf("messages after the renewal: %q", msgs)
	}
	p.do(chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("login")))

	// Signed out: the cookie is gone, the page asks for a login again.
	p.do(chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("login")))
	if probs := p.problems(); len(probs) > 0 {
		t.Errorf("console: %q", probs)
	}
	assertNothingStoredBesides(t, prefix, 2)
}

// What goes wrong is said on the page. When the session has ended (both
// cookies gone, so it cannot be renewed), Uppy's first request gets the
// gateway's JSON message and the page asks to sign in again; signed in,
// the user retries the failed upload. A page whose Content-Security-Policy
// does not list the S3 origin (no connect_origins) cannot send the file:
// Chromium blocks the request, the page says the upload failed, and
// nothing is stored.
func TestUploadPageShowsRefusals(t *testing.T) {
	prefix := testPrefix(t)
	uploader := idpUser{email: "uploader@example.com", password: "uploader-password", groups: []string{"uploader"}}
	idp := newLocalIdP(t, uploader)
	gw := startGateway(t, "upload_page\n\t"+idp.site([]string{"session_cookie"}, pageAPI(prefix)))
	file := writeTestFile(t, "a.txt", []byte("hello"))

	p := openPage(t, gw)
	p.signIn(uploader.email, uploader.password)
	p.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{})
		return err
	}))
	p.addFiles(file)
	p.do(chromedp.Click(chromedp.CSS("button.uppy-StatusBar-actionBtn--upload")))
	expired := p.waitMessage("a.txt", "authentication required")
	p.waitMessage("session has ended")
	p.do(chromedp.WaitVisible(chromedp.ID("login")))

	p.signIn(uploader.email, uploader.password)
	p.do(chromedp.Click(chromedp.CSS("button.uppy-StatusBar-actionBtn--retry")))
	blocked := p.waitMessage("a.txt", "network error")
	p.do(screenshot(t, "blocked"))
	t.Logf("messages: %q, %q", expired, blocked)
	probs := p.problems()
	csp := slices.ContainsFunc(probs, func(m string) bool {
		return strings.Contains(m, "violates the following Content Security Policy directive: \"connect-src 'self'\"")
	})
	exception := slices.ContainsFunc(probs, func(m string) bool { return strings.HasPrefix(m, string(chromedp.ConsoleException)) })
	if !csp || exception {
		t.Errorf("console: %q, want the CSP violation and no exception", probs)
	}
	for _, r := range p.s3Requests() { // blocked before they were sent: no answer
		if r.status != 0 {
			t.Errorf("a request reached S3: %+v", r)
		}
	}
	assertNothingLeft(t, prefix)
}
