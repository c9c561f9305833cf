//go:build integration

package integration_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// sessionAppSite is the README's legacy-app recipe in front of the legacy PHP
// app: the app's own session check (forward_auth) decides before the
// gateway reads the body, its X-User-Id goes into the key and metadata, and
// polls of /upload/progress follow the upload.
func sessionAppSite(prefix, app string, lines ...string) string {
	lines = append([]string{
		"output pass",
		"key users/{http.request.header.X-User-Id}/{upload.uuid}/{upload.filename}",
		"metadata user-id {http.request.header.X-User-Id}",
	}, lines...)
	return fmt.Sprintf(`upload_progress {
		report_path /upload/progress
	}
	@upload {
		method POST
		path /attachments/upload
	}
	route @upload {
		forward_auth %s {
			uri /session-check
			copy_headers X-User-Id
		}
		%s
	}
	reverse_proxy %s`, app, gatewayOpts{prefix: prefix, lines: lines}.block(), app)
}

// sessionClient is a client of gw with a cookie jar, signed in to the
// legacy app as user when user is not empty.
func sessionClient(t *testing.T, gw *harness.Gateway, user string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := *gw.Client
	c.Jar = jar
	if user != "" {
		resp, err := c.Get(gw.URL + "/login?user=" + user)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("login: %d", resp.StatusCode)
		}
	}
	return &c
}

// postAttachment posts the legacy app's form (title and one file) and
// returns the response and its body.
func postAttachment(t *testing.T, c *http.Client, url, fileName, contentType string, data []byte, header http.Header) (*http.Response, string) {
	t.Helper()
	body, ctype := buildForm(t, []formPart{
		{field: "title", value: "holiday"},
		{field: "attachment", fileName: fileName, contentType: contentType, body: bytes.NewReader(data)},
	})
	req, _ := http.NewRequest(http.MethodPost, url, body)
	req.Header.Set("Content-Type", ctype)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

var receivedField = regexp.MustCompile(`<dd id="f-([^"]+)">([^<]*)</dd>`)

// received is what the legacy app's page says it got.
func received(page string) map[string]string {
	out := map[string]string{}
	for _, m := range receivedField.FindAllStringSubmatch(page, -1) {
		out[html.UnescapeString(m[1])] = html.UnescapeString(m[2])
	}
	return out
}

// An app whose sessions are PHP sessions, not JWTs: forward_auth asks it
// before a single body byte is read, so a browser without a session stores
// nothing, and a client cannot claim another user's X-User-Id; a signed-in
// user's file lands under their id, with their id in the metadata.
func TestLegacyForwardAuthSessionDecidesBeforeStoring(t *testing.T) {
	prefix := testPrefix(t)
	app := startApp(t, appLegacyPHP)
	gw := startGateway(t, sessionAppSite(prefix, app))
	data := fileBytes(t, "", 7, 300<<10)
	forged := http.Header{"X-User-Id": {"mallory"}}

	t.Run("no session", func(t *testing.T) {
		resp, page := postAttachment(t, sessionClient(t, gw, ""), gw.URL+"/attachments/upload?X-Progress-ID=nosession1",
			"notes.txt", "text/plain", data, forged)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "not signed in") {
			t.Fatalf("got %d %q, want the app's 401", resp.StatusCode, page)
		}
		if s := pollProgress(t, gw, "nosession1"); s != `{"state":"error","status":401}` {
			t.Errorf("progress after the refusal: %s", s)
		}
		assertNothingLeft(t, prefix)
	})

	t.Run("alice", func(t *testing.T) {
		resp, page := postAttachment(t, sessionClient(t, gw, "alice"), gw.URL+"/attachments/upload", "notes.txt", "text/plain", data, forged)
		got := received(page)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, page)
		}
		key := got["attachment_key"]
		if !strings.HasPrefix(key, prefix+"users/alice/") || got["title"] != "holiday" || got["attachment_name"] != "notes.txt" {
			t.Fatalf("the app received %v", got)
		}
		if !strings.Contains(page, "0 file bodies") {
			t.Errorf("the app got file bytes: %s", page)
		}
		sum, size := objectSHA256(t, key)
		want := sha256.Sum256(data)
		if sum != hex.EncodeToString(want[:]) || size != int64(len(data)) {
			t.Errorf("object %s: sha256 %s size %d", key, sum, size)
		}
		head, err := env.S3().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if head.Metadata["user-id"] != "alice" {
			t.Errorf("metadata %v, want user-id alice", head.Metadata)
		}
	})
}

// A refused form gets an answer a page can show: a 303 to the form page
// with the status, or the app gets the request with upload_error fields
// instead of the form and renders its page again. Nothing stays in S3.
func TestLegacyRefusedFormRedirectOrHandOff(t *testing.T) {
	tests := []struct {
		name        string
		onError     string
		file        string
		contentType string
		size        int
		wantStatus  string
	}{
		{"too large, redirect", "on_error redirect /attachments/new?error={http.upload_gateway.error_status}", "big.txt", "text/plain", 64 << 10, "413"},
		{"wrong type, redirect", "on_error redirect /attachments/new?error={http.upload_gateway.error_status}", "tool.exe", "application/x-msdownload", 1 << 10, "415"},
		{"too large, hand-off", "on_error pass upload_error", "big.txt", "text/plain", 64 << 10, "413"},
		{"wrong type, hand-off", "on_error pass upload_error", "tool.exe", "application/x-msdownload", 1 << 10, "415"},
	}
	app := startApp(t, appLegacyPHP)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := testPrefix(t)
			gw := startGateway(t, sessionAppSite(prefix, app, "max_file_size 16KiB", "allowed_types text/plain image/png", tt.onError))
			c := sessionClient(t, gw, "alice")
			noFollow := *c
			noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, _ := postAttachment(t, &noFollow, gw.URL+"/attachments/upload", tt.file, tt.contentType, fileBytes(t, "", 3, int64(tt.size)), nil)
			if strings.Contains(tt.onError, "redirect") {
				if want := "/attachments/new?error=" + tt.wantStatus; resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
					t.Errorf("got %d Location %q, want 303 %s", resp.StatusCode, resp.Header.Get("Location"), want)
				}
			} else if resp.StatusCode != http.StatusOK {
				t.Errorf("hand-off: status %d, want the app's 200", resp.StatusCode)
			}
			// What the browser ends up showing.
			_, page := postAttachment(t, c, gw.URL+"/attachments/upload", tt.file, tt.contentType, fileBytes(t, "", 3, int64(tt.size)), nil)
			if !strings.Contains(page, `<p id="error" role="alert">`) || !strings.Contains(page, "("+tt.wantStatus+")") {
				t.Errorf("the page does not explain %s: %s", tt.wantStatus, page)
			}
			assertNothingLeft(t, prefix)
		})
	}
}

// A plain HTML form carries no Authorization header, but its cookies: with
// token_cookie, an id token in a cookie (as an Amplify or hosted-UI
// sign-in page keeps it) authenticates the form, when the browser says it
// was posted from the site itself (Origin); with token_query, a token in
// the URL does, and the query parameter does not reach the app.
func TestLegacyTokenCookieAndQuery(t *testing.T) {
	prefix := testPrefix(t)
	idp := newLocalIdP(t, idpUser{email: "form@example.com", password: "form-password", groups: []string{"uploader"}})
	gw := startGateway(t, idp.site([]string{"token_cookie id_token", "token_query access_token"}, gatewayOpts{prefix: prefix, auth: true,
		lines: []string{"key {http.auth.user.email}/{upload.uuid}/{upload.filename}"}}.block()))
	lr := login(t, gw.Client, gw.URL, "form@example.com", "form-password")
	if lr.status != http.StatusOK || lr.body.Data.Token == "" {
		t.Fatalf("login: %d", lr.status)
	}
	token := lr.body.Data.Token
	post := func(t *testing.T, url, origin string, cookie *http.Cookie) *http.Response {
		body, ctype := buildForm(t, []formPart{{field: "f", fileName: "a.txt", contentType: "text/plain", body: strings.NewReader("hello")}})
		req, _ := http.NewRequest(http.MethodPost, url, body)
		req.Header.Set("Content-Type", ctype)
		if origin != "" {
			req.Header.Set("Origin", origin) // as a browser sends it with a form post
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := gw.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	tests := []struct {
		name   string
		url    string
		origin string
		cookie *http.Cookie
		want   int
	}{
		{"id token cookie", gw.URL + "/up", gw.URL, &http.Cookie{Name: "id_token", Value: token}, http.StatusCreated},
		{"id token cookie, form from another site", gw.URL + "/up", "https://evil.example", &http.Cookie{Name: "id_token", Value: token}, http.StatusForbidden},
		{"id token cookie, no Origin", gw.URL + "/up", "", &http.Cookie{Name: "id_token", Value: token}, http.StatusForbidden},
		{"token in the query", gw.URL + "/up?access_token=" + token, "", nil, http.StatusCreated},
		{"no token", gw.URL + "/up", gw.URL, nil, http.StatusUnauthorized},
		{"another cookie", gw.URL + "/up", gw.URL, &http.Cookie{Name: "session", Value: token}, http.StatusUnauthorized},
		{"a forged cookie", gw.URL + "/up", gw.URL, &http.Cookie{Name: "id_token", Value: token[:len(token)-4] + "AAAA"}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, tt.url, tt.origin, tt.cookie)
			r := decodeResponse(t, resp)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %+v", resp.StatusCode, tt.want, r)
			}
			if tt.want == http.StatusForbidden && r.Error.Code != "CSRF_ORIGIN" {
				t.Errorf("refused with %q, want CSRF_ORIGIN", r.Error.Code)
			}
			if tt.want == http.StatusCreated && !strings.HasPrefix(r.Data.Files[0].S3Key, prefix+"form@example.com/") {
				t.Errorf("key %s", r.Data.Files[0].S3Key)
			}
		})
	}
	assertNothingStoredBesides(t, prefix, 2)
}

// pollProgress asks the gateway's progress path about id.
func pollProgress(t *testing.T, gw *harness.Gateway, id string) string {
	t.Helper()
	resp, err := gw.Client.Get(gw.URL + "/upload/progress?X-Progress-ID=" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("poll: %d %v", resp.StatusCode, resp.Header)
	}
	return string(raw)
}

// The progress path answers like nginx-upload-progress-module while a form
// streams through the gateway to S3: starting, uploading with the bytes
// received of Content-Length, then done; error with the status for a form
// refused midway; JSONP for old jQuery plugins.
func TestProgressOfFormUploads(t *testing.T) {
	prefix := testPrefix(t)
	app := startApp(t, appLegacyPHP)
	gw := startGateway(t, sessionAppSite(prefix, app, "max_file_size 4MiB"))
	c := sessionClient(t, gw, "alice")

	if s := pollProgress(t, gw, "never-started"); s != `{"state":"starting"}` {
		t.Errorf("unknown id: %s", s)
	}

	// A 3 MiB form sent in 64 KiB steps, polled as it goes.
	const size = 3 << 20
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("attachment", "slow.txt")
	_, _ = fw.Write(fileBytes(t, "", 11, size))
	_ = mw.Close()
	total := form.Len()
	pr, pw := io.Pipe()
	go func() {
		b := form.Bytes()
		for len(b) > 0 {
			n := min(64<<10, len(b))
			if _, err := pw.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
			time.Sleep(20 * time.Millisecond)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/attachments/upload", pr)
	req.ContentLength = int64(total)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-Progress-ID", "slow-1")
	done := make(chan int, 1)
	go func() {
		resp, err := c.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	var midway []int64
	var status int
poll:
	for {
		select {
		case status = <-done:
			break poll
		case <-time.After(100 * time.Millisecond):
		}
		var s struct {
			State          string
			Received, Size int64
		}
		raw := pollProgress(t, gw, "slow-1")
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if s.State == "uploading" {
			if s.Size != int64(total) || s.Received > s.Size {
				t.Errorf("uploading %+v, size should be %d", s, total)
			}
			midway = append(midway, s.Received)
		}
	}
	if status != http.StatusOK {
		t.Fatalf("upload status %d", status)
	}
	if len(midway) < 3 || midway[len(midway)-1] <= midway[0] || midway[0] >= int64(total) {
		t.Errorf("progress seen while uploading: %v of %d", midway, total)
	}
	if s := pollProgress(t, gw, "slow-1"); s != `{"state":"done"}` {
		t.Errorf("after the upload: %s", s)
	}
	t.Logf("polls while uploading saw received = %v of %d", midway, total)

	// Too large: refused midway, 413.
	resp, _ := postAttachment(t, c, gw.URL+"/attachments/upload?X-Progress-ID=big-1", "big.txt", "text/plain", fileBytes(t, "", 5, 5<<20), nil)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized form: %d", resp.StatusCode)
	}
	if s := pollProgress(t, gw, "big-1"); s != `{"state":"error","status":413}` {
		t.Errorf("after the refusal: %s", s)
	}
	resp2, err := gw.Client.Get(gw.URL + "/upload/progress?X-Progress-ID=slow-1&callback=jQuery_123")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if string(raw) != `jQuery_123({"state":"done"});` || resp2.Header.Get("Content-Type") != "application/javascript" {
		t.Errorf("JSONP: %q %s", raw, resp2.Header.Get("Content-Type"))
	}
	assertNothingStoredBesides(t, prefix, 1)
}
