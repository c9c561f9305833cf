//go:build integration

package integration_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// sessionSite is a gateway for browsers: upload_auth with session cookies
// (authLines choose the identity provider), the file API under /api and
// streamed uploads under /up/.
func sessionSite(prefix, authLines string) string {
	return fmt.Sprintf(`upload_auth {
		%s
		session_cookie
		allowed_origins https://app.example.com
	}
	handle /up/* {
		%s
	}
	upload_api {
		%s
		prefix %s
		base_path /api
		role_arn {env.UGW_STS_ROLE_ARN}
		sts_endpoint {env.UGW_STS_ENDPOINT}
		post_policy_credentials gateway
		secret integration-test-secret-0123456789abcdef
	}`, authLines, gatewayOpts{prefix: prefix, auth: true, lines: []string{
		"allowed_roles admin uploader",
		"key users/{http.auth.user.id}/{upload.uuid}{upload.ext}",
	}}.block(), harness.S3Settings(""), prefix)
}

// cookieClient is an HTTP client with a cookie jar, as a browser tab on the
// gateway's origin: it sends Origin on requests that are not GET or HEAD,
// as browsers do (origin "" sends none).
type cookieClient struct {
	t      *testing.T
	gw     *harness.Gateway
	client *http.Client
	jar    *cookiejar.Jar
}

func newCookieClient(t *testing.T, gw *harness.Gateway) *cookieClient {
	jar, _ := cookiejar.New(nil)
	c := *gw.Client
	c.Jar = jar
	return &cookieClient{t: t, gw: gw, client: &c, jar: jar}
}

// do sends a request to path with the given Origin, body (JSON unless
// nil) and extra headers, and returns the response with its body read.
func (b *cookieClient) do(method, path, origin string, body any, header map[string]string) (*http.Response, []byte) {
	b.t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	default:
		raw, _ := json.Marshal(v)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, b.gw.URL+path, rd)
	if _, ok := body.(string); !ok && body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

// cookie returns the value of the jar's cookie name for path ("" if none).
func (b *cookieClient) cookie(path, name string) string {
	u, _ := url.Parse(b.gw.URL + path)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// errorCode reads the error code of an envelope.
func errorCode(raw []byte) string {
	var env struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(raw, &env)
	return env.Error.Code
}

// A person signs in on the gateway's own page and uses the file API and
// streamed uploads with nothing but the session cookie, as Uppy in
// Companion mode does (plain fetch); a page on another site cannot use
// the cookie to change anything; refresh renews the session and sign-out
// ends it. Once with the built-in identity provider, once with Cognito.
func TestBrowserSessionCookie(t *testing.T) {
	idp := newLocalIdP(t, idpUser{email: "browser@example.com", password: "browser-password", groups: []string{"uploader"}})
	providers := []struct {
		name, authLines, email, password string
		tokenTTL                         int  // seconds; 0: Cognito's
		rotates                          bool // refresh tokens rotate (the local provider)
	}{
		{name: "local", authLines: fmt.Sprintf("local {\n\t\t\tusers_file %s\n\t\t\tkeys_dir %s\n\t\t\ttoken_ttl 10m\n\t\t}", idp.usersFile, idp.keysDir),
			email: "browser@example.com", password: "browser-password", tokenTTL: 600, rotates: true},
		{name: "cognito", authLines: "issuer {env.UGW_COGNITO_ISSUER}\n\t\tjwks_url {env.UGW_COGNITO_JWKS_URL}\n\t\tclient_id {env.UGW_COGNITO_CLIENT_ID}\n\t\tcognito_endpoint {env.UGW_COGNITO_ENDPOINT}",
			email: cognitoEnv(t, "UPLOADER_EMAIL"), password: cognitoEnv(t, "UPLOADER_PASSWORD")},
	}
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			prefix := testPrefix(t)
			gw := startGateway(t, sessionSite(prefix, p.authLines))
			b := newCookieClient(t, gw)
			self := gw.URL // the page's origin

			// Sign in: the cookies come with the answer.
			resp, raw := b.do("POST", "/auth/login", self, map[string]string{"email": p.email, "password": p.password}, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("login: %d %s", resp.StatusCode, raw)
			}
			var login struct {
				Data struct {
					ExpiresIn int `json:"expiresIn"`
					User      struct{ ID, Email string }
				} `json:"data"`
			}
			_ = json.Unmarshal(raw, &login)
			cookies := map[string]*http.Cookie{}
			for _, c := range resp.Cookies() {
				cookies[c.Name+" "+c.Path] = c
			}
			session, refreshCookie, logoutCookie := cookies["ugw_session /"], cookies["ugw_session_refresh /auth/refresh"], cookies["ugw_session_refresh /auth/logout"]
			if len(cookies) != 3 || session == nil || refreshCookie == nil || logoutCookie == nil {
				t.Fatalf("login cookies: %q", resp.Header.Values("Set-Cookie"))
			}
			for _, c := range cookies {
				if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Value == "" {
					t.Errorf("cookie %s (path %s) is not HttpOnly, Secure, SameSite=Strict: %s", c.Name, c.Path, c)
				}
			}
			if session.MaxAge != login.Data.ExpiresIn || session.MaxAge <= 0 || (p.tokenTTL != 0 && session.MaxAge != p.tokenTTL) {
				t.Errorf("session cookie Max-Age %d, token lifetime %d (want %d)", session.MaxAge, login.Data.ExpiresIn, p.tokenTTL)
			}
			if refreshCookie.MaxAge < 24*3600 {
				t.Errorf("refresh cookie Max-Age %d", refreshCookie.MaxAge)
			}
			if b.cookie("/api/files", "ugw_session_refresh") != "" {
				t.Error("the refresh cookie is sent beyond the refresh and sign-out routes")
			}

			t.Run("who is signed in", func(t *testing.T) {
				resp, raw := b.do("GET", "/auth/session", "", nil, nil)
				var s struct {
					Data struct{ ID, Email, Role string } `json:"data"`
				}
				_ = json.Unmarshal(raw, &s)
				if resp.StatusCode != http.StatusOK || s.Data.ID != login.Data.User.ID || s.Data.Email != p.email || s.Data.Role != "uploader" {
					t.Errorf("session: %d %s", resp.StatusCode, raw)
				}
			})

			t.Run("file API by cookie", func(t *testing.T) {
				if resp, raw := b.do("GET", "/api/files", "", nil, nil); resp.StatusCode != http.StatusOK {
					t.Errorf("GET /api/files: %d %s", resp.StatusCode, raw)
				}
			})

			uploadURL := map[string]any{"fileName": "a.txt", "fileSize": 5, "contentType": "text/plain"}
			t.Run("state-changing requests from other sites are refused", func(t *testing.T) {
				for _, origin := range []string{"https://evil.example", "null", ""} {
					resp, raw := b.do("POST", "/api/files/upload-url", origin, uploadURL, nil)
					if resp.StatusCode != http.StatusForbidden || errorCode(raw) != "CSRF_ORIGIN" {
						t.Errorf("upload-url with Origin %q: %d %s", origin, resp.StatusCode, raw)
					}
					resp, raw = b.do("PUT", "/up/evil.txt", origin, "evil", map[string]string{"Content-Type": "text/plain"})
					if resp.StatusCode != http.StatusForbidden || errorCode(raw) != "CSRF_ORIGIN" {
						t.Errorf("upload with Origin %q: %d %s", origin, resp.StatusCode, raw)
					}
				}
				// Nothing reached S3.
				assertNothingStoredBesides(t, prefix, 0)
			})

			t.Run("from the site itself or an allowed origin they pass", func(t *testing.T) {
				for _, origin := range []string{self, "https://app.example.com"} {
					resp, raw := b.do("POST", "/api/files/upload-url", origin, uploadURL, nil)
					if resp.StatusCode != http.StatusOK {
						t.Errorf("upload-url with Origin %q: %d %s", origin, resp.StatusCode, raw)
					}
				}
				// No Origin, but a same-origin Referer (older browsers).
				resp, raw := b.do("POST", "/api/files/upload-url", "", uploadURL, map[string]string{"Referer": self + "/upload"})
				if resp.StatusCode != http.StatusOK {
					t.Errorf("upload-url with a same-origin Referer: %d %s", resp.StatusCode, raw)
				}
				resp, raw = b.do("PUT", "/up/notes.txt", self, "hello from the browser", map[string]string{"Content-Type": "text/plain"})
				var up apiResponse
				_ = json.Unmarshal(raw, &up)
				if resp.StatusCode != http.StatusCreated || len(up.Data.Files) != 1 {
					t.Fatalf("upload by cookie: %d %s", resp.StatusCode, raw)
				}
				key := up.Data.Files[0].S3Key
				if !strings.HasPrefix(key, prefix+"users/"+login.Data.User.ID+"/") {
					t.Errorf("key %s is not under the user's prefix", key)
				}
				assertEncrypted(t, key)
			})

			t.Run("a bearer token is not checked for Origin", func(t *testing.T) {
				plain := newCookieClient(t, gw) // no cookies
				resp, raw := plain.do("POST", "/api/files/upload-url", "https://evil.example", uploadURL, map[string]string{"Authorization": "Bearer " + session.Value})
				if resp.StatusCode != http.StatusOK {
					t.Errorf("bearer upload-url from another origin: %d %s", resp.StatusCode, raw)
				}
			})

			t.Run("refresh from another site is refused", func(t *testing.T) {
				resp, raw := b.do("POST", "/auth/refresh", "https://evil.example", nil, nil)
				if resp.StatusCode != http.StatusForbidden || errorCode(raw) != "CSRF_ORIGIN" || len(resp.Cookies()) != 0 {
					t.Errorf("refresh: %d %s %q", resp.StatusCode, raw, resp.Header.Values("Set-Cookie"))
				}
			})

			oldRefresh := b.cookie("/auth/refresh", "ugw_session_refresh")
			time.Sleep(1100 * time.Millisecond) // a new token has a new iat
			resp, raw = b.do("POST", "/auth/refresh", self, nil, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("refresh: %d %s", resp.StatusCode, raw)
			}
			if strings.Contains(string(raw), `"token"`) || strings.Contains(string(raw), `"refreshToken"`) || !strings.Contains(string(raw), p.email) {
				t.Errorf("a cookie refresh answers the tokens to the page: %s", raw)
			}
			if renewed := b.cookie("/", "ugw_session"); renewed == "" || renewed == session.Value {
				t.Error("refresh did not renew the session cookie")
			}
			if resp, raw := b.do("GET", "/api/files", "", nil, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("file API after refresh: %d %s", resp.StatusCode, raw)
			}
			currentRefresh := b.cookie("/auth/refresh", "ugw_session_refresh")
			if p.rotates && (currentRefresh == oldRefresh || b.cookie("/auth/logout", "ugw_session_refresh") != currentRefresh) {
				t.Error("the local provider's rotated refresh token is not in both refresh cookies")
			}

			t.Run("sign-out from another site is refused", func(t *testing.T) {
				resp, raw := b.do("POST", "/auth/logout", "https://evil.example", nil, nil)
				if resp.StatusCode != http.StatusForbidden || errorCode(raw) != "CSRF_ORIGIN" {
					t.Errorf("logout: %d %s", resp.StatusCode, raw)
				}
			})

			resp, raw = b.do("POST", "/auth/logout", self, nil, nil)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"signedOut":true`) {
				t.Fatalf("logout: %d %s", resp.StatusCode, raw)
			}
			if b.cookie("/", "ugw_session") != "" || b.cookie("/auth/refresh", "ugw_session_refresh") != "" || b.cookie("/auth/logout", "ugw_session_refresh") != "" {
				t.Errorf("cookies left after sign-out: %q", resp.Header.Values("Set-Cookie"))
			}
			if resp, raw := b.do("GET", "/api/files", "", nil, nil); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("file API after sign-out: %d %s", resp.StatusCode, raw)
			}
			if resp, raw := b.do("GET", "/auth/session", "", nil, nil); resp.StatusCode != http.StatusUnauthorized || errorCode(raw) != "UNAUTHENTICATED" {
				t.Errorf("session after sign-out: %d %s", resp.StatusCode, raw)
			}
			if resp, raw := b.do("POST", "/auth/refresh", self, nil, nil); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("refresh after sign-out: %d %s", resp.StatusCode, raw)
			}
			// The session is revoked (local: revocation record; Cognito:
			// RevokeToken), not only forgotten by the browser.
			_, token, _ := strings.Cut(currentRefresh, ".")
			resp, raw = newCookieClient(t, gw).do("POST", "/auth/refresh", "", map[string]string{"refreshToken": token}, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("the signed-out refresh token still works: %d %s", resp.StatusCode, raw)
			}
		})
	}
}

// htmlSite answers path with the page html.
func htmlSite(path, html string) string {
	return fmt.Sprintf(`handle %s {
		header Content-Type "text/html; charset=utf-8"
		respond <<HTML
%s
HTML 200
	}`, path, html)
}

// In Chromium: a page on the gateway's origin signs in with fetch, cannot
// read the HttpOnly cookies, and uploads with nothing but them (Chromium
// adds Origin itself); a page on another origin of the same site (another
// port: SameSite lets the cookie through) that posts a form to the gateway
// is refused 403 CSRF_ORIGIN; refresh and sign-out work from the page.
func TestBrowserSessionCookieInChromium(t *testing.T) {
	prefix := testPrefix(t)
	idp := newLocalIdP(t, idpUser{email: "chromium@example.com", password: "chromium-password", groups: []string{"uploader"}})
	// The page itself needs no sign-in.
	gw := startGateway(t, fmt.Sprintf(`@signedIn not path /page
	upload_auth @signedIn {
		local {
			users_file %s
			keys_dir %s
		}
		session_cookie
	}
	handle /up/* {
		%s
	}
	%s`, idp.usersFile, idp.keysDir, gatewayOpts{prefix: prefix, auth: true, lines: []string{"key users/{http.auth.user.id}/{upload.filename}"}}.block(),
		htmlSite("/page", `<!doctype html><title>gateway</title><p id="ready">gateway page</p>`)))
	other := startGateway(t, htmlSite("/evil", fmt.Sprintf(`<!doctype html><title>other origin</title>
<form id="f" method="POST" action="%s/up/evil.txt" enctype="multipart/form-data">
<input type="hidden" name="note" value="from another origin"></form>
<script>document.getElementById("f").submit()</script>`, gw.URL)))
	ctx := newBrowser(t)

	// run evaluates an async function body in the page and returns its
	// result.
	run := func(body string) map[string]any {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](`(async () => {`+body+`})()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("evaluating %s: %v", body, err)
		}
		return out
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(gw.URL+"/page"), chromedp.WaitVisible(chromedp.ID("ready"))); err != nil {
		t.Fatal(err)
	}
	got := run(`
		const login = await fetch("/auth/login", {method: "POST", headers: {"Content-Type": "application/json"},
			body: JSON.stringify({email: "chromium@example.com", password: "chromium-password"})});
		const session = await fetch("/auth/session");
		const up = await fetch("/up/page.txt", {method: "PUT", headers: {"Content-Type": "text/plain"}, body: "uploaded by the page"});
		return {login: login.status, loginBody: await login.text(), cookies: document.cookie, session: await session.json(), upload: up.status, uploadBody: await up.text()};`)
	if got["login"] != float64(200) || got["upload"] != float64(201) {
		t.Fatalf("page: %v", got)
	}
	if body, _ := got["loginBody"].(string); strings.Contains(body, "oken") || !strings.Contains(body, "chromium@example.com") {
		t.Errorf("the login answered the page with tokens (or without the user): %s", body)
	}
	if got["cookies"] != "" {
		t.Errorf("page scripts can read the cookies: %q", got["cookies"])
	}
	if data, _ := got["session"].(map[string]any)["data"].(map[string]any); data["email"] != "chromium@example.com" || data["role"] != "uploader" {
		t.Errorf("session: %v", got["session"])
	}

	// Another origin of the same site posts a form at the gateway: the
	// browser sends the cookie, and its Origin, and the gateway refuses.
	if err := chromedp.Do(ctx, chromedp.Navigate(other.URL+"/evil")); err != nil {
		t.Fatal(err)
	}
	var refused string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(refused, "CSRF_ORIGIN") {
		time.Sleep(100 * time.Millisecond)
		refused, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`location.href.startsWith(`+strconv.Quote(gw.URL)+`) ? document.body.innerText : ""`))
	}
	if !strings.Contains(refused, "CSRF_ORIGIN") {
		t.Errorf("the other origin's form post was not refused with CSRF_ORIGIN: %q", refused)
	}
	if err := chromedp.Do(ctx, screenshot(t, "refused")); err != nil {
		t.Fatal(err)
	}

	// Back on the gateway's page: refresh, then sign out.
	if err := chromedp.Do(ctx, chromedp.Navigate(gw.URL+"/page"), chromedp.WaitVisible(chromedp.ID("ready"))); err != nil {
		t.Fatal(err)
	}
	got = run(`
		const refresh = await fetch("/auth/refresh", {method: "POST"});
		const refreshed = await refresh.json();
		const after = await fetch("/up/after-refresh.txt", {method: "PUT", headers: {"Content-Type": "text/plain"}, body: "after refresh"});
		const logout = await fetch("/auth/logout", {method: "POST"});
		const session = await fetch("/auth/session");
		const up = await fetch("/up/after-logout.txt", {method: "PUT", headers: {"Content-Type": "text/plain"}, body: "x"});
		return {refresh: refresh.status, refreshed, after: after.status, logout: logout.status, session: session.status, upload: up.status};`)
	if got["refresh"] != float64(200) || got["after"] != float64(201) || got["logout"] != float64(200) || got["session"] != float64(401) || got["upload"] != float64(401) {
		t.Errorf("refresh and sign-out: %v", got)
	}
	if data, _ := got["refreshed"].(map[string]any)["data"].(map[string]any); data["token"] != nil || data["refreshToken"] != nil || data["expiresIn"] == nil {
		t.Errorf("refresh answered the page: %v", got["refreshed"])
	}
	assertNothingStoredBesides(t, prefix, 2)
}
