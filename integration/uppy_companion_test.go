//go:build integration

package integration_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// uppyPageJS is the test's own page script: Uppy's core and its S3
// plugin from npm, unchanged, in the mode the page is told. It uploads the
// file of the page's file input and leaves the outcome in window.outcome.
const uppyPageJS = `import Uppy from "@uppy/core"
import AwsS3 from "@uppy/aws-s3"

window.upload = (mode, multipart, pauseAfterFirstPart) => {
  window.outcome = null
  const uppy = new Uppy({ autoProceed: false })
  const plugin = mode === "companion"
    ? { companionEndpoint: location.origin + "/api" }
    : {
        // The README's signRequest callback.
        signRequest: async (request) => {
          const res = await fetch("/api/s3/sign", {
            method: "POST",
            headers: { "Content-Type": "application/json", Authorization: "Bearer " + window.token },
            body: JSON.stringify(request),
          })
          if (!res.ok) throw new Error("signing failed: " + res.status)
          return res.json()
        },
      }
  uppy.use(AwsS3, { ...plugin, shouldUseMultipart: () => multipart })
  let parts = 0
  uppy.on("s3-multipart:part-uploaded", (file) => {
    parts++
    if (pauseAfterFirstPart && parts === 1) {
      // The user pauses, and resumes a little later: Uppy lists the
      // parts S3 has and uploads the rest.
      uppy.pauseResume(file.id)
      setTimeout(() => uppy.pauseResume(file.id), 300)
    }
  })
  // How often Uppy asked for the parts uploaded so far.
  const listed = () => performance.getEntriesByType("resource").filter((e) => /\/s3\/multipart\/[^/]+\?key=|\/s3\/sign\/parts\?/.test(e.name)).length
  const file = document.getElementById("file").files[0]
  uppy.addFile({ name: file.name, type: file.type, data: file })
  uppy.upload().then(
    (result) => {
      window.outcome = {
        ok: result.failed.length === 0,
        key: result.successful.length ? result.successful[0].response.body.key : "",
        location: result.successful.length ? result.successful[0].response.body.location : "",
        error: result.failed.length ? String(result.failed[0].error) : "",
        parts,
        listed: listed(),
      }
    },
    (err) => { window.outcome = { ok: false, error: String(err), parts } },
  )
}
`

const uppyPageHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>Uppy test page</title></head>
<body><input type="file" id="file"><script src="page.js"></script></body></html>
`

// uppySite serves the test page under /page/ from dir and the login and
// file APIs everywhere else, with the JWT also read from the ugw_token
// cookie (Uppy's Companion requests are plain fetch calls).
func uppySite(prefix, dir string, apiLines ...string) string {
	return fmt.Sprintf(`handle /page/* {
		root * %s
		uri strip_prefix /page
		file_server
	}
	handle {
		upload_auth {
			issuer {env.UGW_COGNITO_ISSUER}
			jwks_url {env.UGW_COGNITO_JWKS_URL}
			client_id {env.UGW_COGNITO_CLIENT_ID}
			cognito_endpoint {env.UGW_COGNITO_ENDPOINT}
			token_cookie ugw_token
		}
		upload_api {
			%s
			prefix %s
			base_path /api
			role_arn {env.UGW_STS_ROLE_ARN}
			sts_endpoint {env.UGW_STS_ENDPOINT}
			post_policy_credentials gateway
			secret integration-test-secret-0123456789abcdef
			%s
		}
		respond 404
	}`, dir, harness.S3Settings(""), prefix, strings.Join(apiLines, "\n\t\t\t"))
}

// uppyOutcome is what the page reports after uppy.upload().
type uppyOutcome struct {
	OK       bool   `json:"ok"`
	Key      string `json:"key"`
	Location string `json:"location"`
	Error    string `json:"error"`
	Parts    int    `json:"parts"`
	Listed   int    `json:"listed"`
}

// uppyPage writes the bundled page into a new directory.
func uppyPage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"index.html": []byte(uppyPageHTML), "page.js": bundleUppy(t, uppyPageJS)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// uploadWithUppy loads the page, picks file and runs Uppy in mode, with
// window.token (for the signRequest callback) set to token.
func uploadWithUppy(t *testing.T, ctx context.Context, gw *harness.Gateway, mode, file string, multipart bool, token string) uppyOutcome {
	t.Helper()
	return uploadWithUppyPausing(t, ctx, gw, mode, file, multipart, false, token)
}

// uploadWithUppyPausing is uploadWithUppy, with the upload paused after
// its first part and resumed when pause is set.
func uploadWithUppyPausing(t *testing.T, ctx context.Context, gw *harness.Gateway, mode, file string, multipart, pause bool, token string) uppyOutcome {
	t.Helper()
	var out uppyOutcome
	err := chromedp.Do(ctx,
		chromedp.Navigate(gw.URL+"/page/index.html"),
		chromedp.WaitVisible(chromedp.ID("file")),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{file}),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := chromedp.Evaluate[any](fmt.Sprintf("window.token = %q", token))(ctx, tg); err != nil {
				return err
			}
			if _, err := chromedp.Evaluate[any](fmt.Sprintf("window.upload(%q, %t, %t)", mode, multipart, pause))(ctx, tg); err != nil {
				return err
			}
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				done, err := chromedp.Evaluate[bool](`window.outcome !== null`)(ctx, tg)
				if err != nil {
					return err
				}
				if done {
					out, err = chromedp.Evaluate[uppyOutcome](`window.outcome`)(ctx, tg)
					return err
				}
			}
			return context.DeadlineExceeded
		}),
	)
	if err != nil {
		t.Fatalf("%s upload of %s: %v", mode, filepath.Base(file), err)
	}
	return out
}

// assertStoredAs checks the object Uppy reported: under the user's own
// prefix, SSE-KMS, and the bytes of the source.
func assertStoredAs(t *testing.T, out uppyOutcome, userPrefix string, data []byte) {
	t.Helper()
	if !out.OK || !strings.HasPrefix(out.Key, userPrefix) {
		t.Fatalf("Uppy reported %+v, want a key under %s", out, userPrefix)
	}
	assertEncrypted(t, out.Key)
	sum, size := objectSHA256(t, out.Key)
	want := sha256.Sum256(data)
	if sum != hex.EncodeToString(want[:]) || size != int64(len(data)) {
		t.Errorf("%s: sha256 %s size %d, want the source's %x (%d bytes)", out.Key, sum, size, want, len(data))
	}
}

// A user's own page bundles Uppy's @uppy/core and @uppy/aws-s3 from npm,
// unchanged, and points its companionEndpoint at the gateway: the gateway
// answers Uppy's Companion routes. Signed in with a cookie, the user
// uploads a small file (one POST policy straight to S3), a 12 MiB file
// in three parts (part URLs straight to S3, the gateway completes from
// its own listing) and a 16 MiB file paused after its first part and
// resumed. All land under the user's prefix, encrypted, intact, with no
// multipart upload left open.
func TestUppyCompanionEndpoint(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, uppySite(prefix, uppyPage(t)))
	l := login(t, gw.Client, gw.URL, cognitoEnv(t, "UPLOADER_EMAIL"), cognitoEnv(t, "UPLOADER_PASSWORD"))
	if l.status != http.StatusOK {
		t.Fatalf("login: %d %+v", l.status, l.body)
	}
	userPrefix := prefix + "users/" + l.body.Data.User.ID + "/"
	ctx := newBrowser(t)
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
			Name: "ugw_token", Value: l.body.Data.Token, URL: gw.URL, HTTPOnly: new(true), Secure: new(true), SameSite: network.CookieSameSiteStrict,
		})
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}

	small := fileBytes(t, "", 31, 200<<10)
	out := uploadWithUppy(t, ctx, gw, "companion", writeTestFile(t, "notes.txt", small), false, "")
	assertStoredAs(t, out, userPrefix, small)
	if out.Parts != 0 {
		t.Errorf("the small file went in %d parts, want a single POST", out.Parts)
	}

	big := fileBytes(t, "", 32, 12<<20)
	out = uploadWithUppy(t, ctx, gw, "companion", writeTestFile(t, "video.bin", big), true, "")
	t.Logf("Uppy: %+v", out)
	assertStoredAs(t, out, userPrefix, big)
	if out.Parts != 3 || out.Listed != 0 {
		t.Errorf("the 12 MiB file went in %d parts, want 3 of Uppy's 5 MiB, listing them %d times", out.Parts, out.Listed)
	}

	// Paused after its first part and resumed: Uppy lists the parts S3
	// has (GET /s3/multipart/{uploadId}?key) and sends the rest.
	paused := fileBytes(t, "", 36, 16<<20)
	out = uploadWithUppyPausing(t, ctx, gw, "companion", writeTestFile(t, "paused.bin", paused), true, true, "")
	t.Logf("Uppy after a pause: %+v", out)
	assertStoredAs(t, out, userPrefix, paused)
	if out.Listed < 1 {
		t.Errorf("Uppy resumed without listing the parts: %+v", out)
	}
	assertNothingStoredBesides(t, prefix, 3)
}

// The same page in signRequest mode: Uppy calls the app's ~10-line
// callback (the README's) for each S3 request, which posts it to the
// gateway's /s3/sign with the user's Bearer token. The gateway picks the
// key; parts go to S3, and creating and completing the multipart upload
// go through the gateway.
func TestUppySignRequest(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, uppySite(prefix, uppyPage(t)))
	l := login(t, gw.Client, gw.URL, cognitoEnv(t, "UPLOADER_EMAIL"), cognitoEnv(t, "UPLOADER_PASSWORD"))
	if l.status != http.StatusOK {
		t.Fatalf("login: %d %+v", l.status, l.body)
	}
	userPrefix := prefix + "users/" + l.body.Data.User.ID + "/"
	ctx := newBrowser(t)

	small := fileBytes(t, "", 33, 300<<10)
	out := uploadWithUppy(t, ctx, gw, "sign", writeTestFile(t, "report.pdf", small), false, l.body.Data.Token)
	assertStoredAs(t, out, userPrefix, small)

	big := fileBytes(t, "", 34, 11<<20)
	out = uploadWithUppy(t, ctx, gw, "sign", writeTestFile(t, "archive.bin", big), true, l.body.Data.Token)
	t.Logf("Uppy: %+v", out)
	assertStoredAs(t, out, userPrefix, big)
	if out.Parts != 3 {
		t.Errorf("the 11 MiB file went in %d parts, want 3", out.Parts)
	}

	// Paused and resumed: Uppy signs a ListParts request, which the
	// gateway answers from its own route.
	paused := fileBytes(t, "", 37, 16<<20)
	out = uploadWithUppyPausing(t, ctx, gw, "sign", writeTestFile(t, "paused.bin", paused), true, true, l.body.Data.Token)
	t.Logf("Uppy after a pause: %+v", out)
	assertStoredAs(t, out, userPrefix, paused)
	if out.Listed < 1 {
		t.Errorf("Uppy resumed without listing the parts: %+v", out)
	}
	assertNothingStoredBesides(t, prefix, 3)
}

// companionCall sends one request to a Companion route with a Bearer token
// and decodes the JSON answer into out (when 200).
func companionCall(t *testing.T, gw *harness.Gateway, token, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, gw.URL+"/api"+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := gw.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %q", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

// A Companion upload id is a sealed token: a complete with one changed
// character, or with another user's upload id, is refused before S3 is
// asked, and the owner's upload is untouched (the owner can still abort
// it, leaving nothing behind).
func TestUppyCompanionTamperedUploadID(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, uppySite(prefix, t.TempDir()))
	admin, uploader := newAPIClient(t, gw, "ADMIN"), newAPIClient(t, gw, "UPLOADER")

	var created struct{ Key, UploadID, Bucket, FileID string }
	if st := companionCall(t, gw, admin.token, http.MethodPost, "/s3/multipart",
		map[string]any{"filename": "plan.txt", "type": "text/plain", "metadata": map[string]any{"name": "plan.txt"}}, &created); st != http.StatusOK {
		t.Fatalf("create: %d", st)
	}
	q := "?" + url.Values{"key": {created.Key}}.Encode()
	tampered := created.UploadID[:len(created.UploadID)-3] + "AAA"
	if tampered == created.UploadID {
		tampered = created.UploadID[:len(created.UploadID)-3] + "BBB"
	}
	for _, tc := range []struct {
		name, token, uploadID string
	}{
		{"tampered", admin.token, tampered},
		{"another user's", uploader.token, created.UploadID},
	} {
		if st := companionCall(t, gw, tc.token, http.MethodPost, "/s3/multipart/"+url.PathEscape(tc.uploadID)+"/complete"+q,
			map[string]any{"parts": []map[string]any{{"PartNumber": 1, "ETag": "x"}}}, nil); st != http.StatusForbidden {
			t.Errorf("complete with %s upload id: %d, want 403", tc.name, st)
		}
		if st := companionCall(t, gw, tc.token, http.MethodGet, "/s3/multipart/"+url.PathEscape(tc.uploadID)+"/1"+q, nil, nil); st != http.StatusForbidden {
			t.Errorf("part URL with %s upload id: %d, want 403", tc.name, st)
		}
	}
	var parts []map[string]any
	if st := companionCall(t, gw, admin.token, http.MethodGet, "/s3/multipart/"+url.PathEscape(created.UploadID)+q, nil, &parts); st != http.StatusOK || len(parts) != 0 {
		t.Fatalf("the owner's listing: %d %v", st, parts)
	}
	if st := companionCall(t, gw, admin.token, http.MethodDelete, "/s3/multipart/"+url.PathEscape(created.UploadID)+q, nil, nil); st != http.StatusOK {
		t.Fatalf("abort: %d", st)
	}
	assertNothingLeft(t, prefix)
}

// A seed-style client never calls sign-parts: with sign_all_parts the
// initiate answer holds a URL for every part, each also as uploadUrl, and
// the client PUTs its parts to those before completing.
func TestSeedStyleClientUsesUploadURLsFromInitiate(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, uppySite(prefix, t.TempDir(), "part_batch 1", "sign_all_parts 10"))
	uploader := newAPIClient(t, gw, "UPLOADER")
	data := fileBytes(t, "", 35, 12<<20)

	var up struct {
		UploadID    string `json:"uploadId"`
		FileID      string `json:"fileId"`
		S3Key       string `json:"s3Key"`
		TotalParts  int    `json:"totalParts"`
		UploadToken string `json:"uploadToken"`
		PartSize    int64  `json:"partSize"`
		PartURLs    []struct {
			PartNumber int               `json:"partNumber"`
			UploadURL  string            `json:"uploadUrl"`
			Headers    map[string]string `json:"headers"`
		} `json:"partUrls"`
	}
	if st, code := uploader.call("POST", "/files/multipart/initiate", map[string]any{
		"fileName": "seed.bin", "fileSize": len(data), "contentType": "application/octet-stream", "partSize": 5 << 20,
	}, &up); st != http.StatusOK {
		t.Fatalf("initiate: %d %s", st, code)
	}
	if up.TotalParts != 3 || len(up.PartURLs) != 3 {
		t.Fatalf("initiate: %d parts, %d URLs; want 3 and 3", up.TotalParts, len(up.PartURLs))
	}
	for i, p := range up.PartURLs {
		part := data[int64(i)*up.PartSize : min(int64(len(data)), int64(i+1)*up.PartSize)]
		if st, body := send(t, "PUT", p.UploadURL, p.Headers, part); st != http.StatusOK {
			t.Fatalf("part %d: %d %s", p.PartNumber, st, body)
		}
	}
	if st, code := uploader.call("POST", "/files/multipart/complete", map[string]any{
		"fileId": up.FileID, "uploadId": up.UploadID, "uploadToken": up.UploadToken,
	}, nil); st != http.StatusOK {
		t.Fatalf("complete: %d %s", st, code)
	}
	assertStoredAs(t, uppyOutcome{OK: true, Key: up.S3Key}, prefix+"users/", data)
	assertNothingStoredBesides(t, prefix, 1)
}
