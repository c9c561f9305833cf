//go:build integration

package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/chromedp/chromedp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/presign"
)

// The origin of the web app in these tests, and one that is not allowed.
const (
	appOrigin   = "https://app.example.test"
	otherOrigin = "https://evil.example.test"
)

// bucketCORSRule is the bucket CORS rule the README documents for browser
// uploads, for the app at origin.
func bucketCORSRule(origin string) types.CORSRule {
	return types.CORSRule{
		AllowedOrigins: []string{origin},
		AllowedMethods: []string{"PUT", "POST", "GET"},
		AllowedHeaders: []string{"*"},
		ExposeHeaders:  []string{"ETag"},
		MaxAgeSeconds:  aws.Int32(3000),
	}
}

// corsBucket creates a bucket of the test's own with the documented CORS
// rule for origin (see newBucket).
// The shared bucket's CORS is never touched.
func corsBucket(t *testing.T, origin string) string {
	t.Helper()
	ctx := context.Background()
	bucket := newBucket(t, "it-cors")
	client := env.S3()
	if _, err := client.PutBucketCors(ctx, &s3.PutBucketCorsInput{
		Bucket:            &bucket,
		CORSConfiguration: &types.CORSConfiguration{CORSRules: []types.CORSRule{bucketCORSRule(origin)}},
	}); err != nil {
		t.Fatalf("PutBucketCors: %v", err)
	}
	return bucket
}

// preflight sends a CORS preflight for method (and headers) from origin.
func preflight(t *testing.T, client *http.Client, url, origin, method, headers string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodOptions, url, nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", method)
	if headers != "" {
		req.Header.Set("Access-Control-Request-Headers", headers)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("OPTIONS %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The bucket rule the README documents lets the app's pages PUT to
// presigned URLs and read the ETag of what they stored (which a multipart
// upload needs for its parts); a page of another origin is refused at the
// preflight, so its browser never sends the PUT.
func TestBucketCORSRuleExposesETag(t *testing.T) {
	bucket := corsBucket(t, appOrigin)
	signer := presign.New(s3.New(s3.Options{Region: env.Region, BaseEndpoint: aws.String(env.S3Endpoint), UsePathStyle: true}))
	creds := credentials.NewStaticCredentialsProvider(env.AccessKey, env.SecretKey, "")
	body := fileBytes(t, pdfMagic, 41, 10_000)
	p, err := signer.PutObject(context.Background(), creds, presign.PutRequest{
		Bucket: bucket, Key: "cors/report.pdf", ContentType: "application/pdf", ContentLength: int64(len(body)), Expires: 5 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	var signed []string
	for name := range p.Headers {
		if !strings.EqualFold(name, "Content-Length") && !strings.EqualFold(name, "Host") {
			signed = append(signed, strings.ToLower(name))
		}
	}

	t.Run("preflight from the app", func(t *testing.T) {
		resp, body := preflight(t, plain, p.URL, appOrigin, "PUT", strings.Join(signed, ","))
		h := resp.Header
		if resp.StatusCode != http.StatusOK || h.Get("Access-Control-Allow-Origin") != appOrigin ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "PUT") ||
			!strings.Contains(strings.ToLower(h.Get("Access-Control-Expose-Headers")), "etag") ||
			h.Get("Access-Control-Max-Age") != "3000" {
			t.Errorf("preflight: %d %v %s", resp.StatusCode, h, body)
		}
	})
	t.Run("preflight from another origin", func(t *testing.T) {
		resp, _ := preflight(t, plain, p.URL, otherOrigin, "PUT", "")
		if resp.StatusCode < 400 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("the PUT's answer exposes its ETag to the app", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, p.URL, bytes.NewReader(body))
		for name, v := range p.Headers {
			if !strings.EqualFold(name, "Content-Length") {
				req.Header[name] = v
			}
		}
		req.Header.Set("Origin", appOrigin)
		res := presignDo(t, req)
		h := res.header
		if res.status != http.StatusOK || h.Get("ETag") == "" || h.Get("Access-Control-Allow-Origin") != appOrigin ||
			!strings.Contains(strings.ToLower(h.Get("Access-Control-Expose-Headers")), "etag") {
			t.Errorf("PUT: %d %v %s", res.status, h, res.body)
		}
	})
}

// corsSite is apiSite with a cors block for appOrigin (and extra origins).
func corsSite(prefix string, origins ...string) string {
	return apiSite(prefix, fmt.Sprintf(`cors {
			origins %s
			max_age 5m
		}`, strings.Join(append([]string{appOrigin}, origins...), " ")))
}

// The file API answers the preflights of a page of the app for every route,
// and lets it read its answers; a page of another origin is refused at the
// preflight (403 JSON) and gets no CORS headers on any answer, so its
// browser keeps the answers from it.
func TestFileAPICORS(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, corsSite(prefix))
	uploader := newAPIClient(t, gw, "UPLOADER")
	id := "aXQvZmlsZQ" // any fileId: preflights carry no credentials and check no file

	for _, route := range []struct{ method, path string }{
		{"POST", "/files/upload-url"},
		{"POST", "/files/upload-post"},
		{"POST", "/files/multipart/initiate"},
		{"POST", "/files/multipart/complete"},
		{"GET", "/files"},
		{"GET", "/files/" + id + "/download-url"},
		{"DELETE", "/files/" + id},
		{"POST", "/files/" + id + "/confirm"},
	} {
		t.Run("preflight "+route.method+" "+route.path, func(t *testing.T) {
			resp, body := preflight(t, gw.Client, gw.URL+"/api"+route.path, appOrigin, route.method, "authorization,content-type")
			h := resp.Header
			if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != appOrigin ||
				!strings.Contains(h.Get("Access-Control-Allow-Methods"), route.method) ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
				h.Get("Access-Control-Max-Age") != "300" || h.Get("Vary") == "" {
				t.Errorf("%d %v %s", resp.StatusCode, h, body)
			}
			resp, body = preflight(t, gw.Client, gw.URL+"/api"+route.path, otherOrigin, route.method, "authorization")
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" ||
				!strings.Contains(body, `"CORS_NOT_ALLOWED"`) {
				t.Errorf("from another origin: %d %v %s", resp.StatusCode, resp.Header, body)
			}
		})
	}

	request := func(origin string) *http.Response {
		req, _ := http.NewRequest("POST", gw.URL+"/api/files/upload-url",
			strings.NewReader(`{"fileName":"a.pdf","fileSize":10,"contentType":"application/pdf"}`))
		req.Header.Set("Authorization", "Bearer "+uploader.token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", origin)
		resp, err := gw.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	t.Run("an answer to the app", func(t *testing.T) {
		resp := request(appOrigin)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != appOrigin ||
			resp.Header.Get("Access-Control-Expose-Headers") != "Retry-After" || resp.Header.Get("Vary") != "Origin" {
			t.Errorf("%d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("an answer to another origin has no CORS headers", func(t *testing.T) {
		resp := request(otherOrigin)
		if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Expose-Headers") != "" {
			t.Errorf("%d %v", resp.StatusCode, resp.Header)
		}
	})
}

// pageResult is what the test pages below report in window.result.
type pageResult struct {
	UploadURLStatus int    `json:"uploadUrlStatus"`
	Key             string `json:"key"`
	PutStatus       int    `json:"putStatus"`
	ETag            string `json:"etag"`
	ConfirmStatus   int    `json:"confirmStatus"`
	Counted         bool   `json:"counted"`
	ExpiredStatus   int    `json:"expiredStatus"`
	ExpiredCode     string `json:"expiredCode"`
	API             string `json:"api"`
	Put             string `json:"put"`
	Error           string `json:"error"`
}

// appPage uploads /data.bin as a PDF the way a web app on another origin
// does: upload-url from the gateway (Bearer token), PUT to S3 reading the
// ETag, confirm.
const appPage = `<!doctype html><meta charset="utf-8"><title>app</title>
<script>
const GW = {{.GW}}, TOKEN = {{.Token}};
(async () => {
  const out = {};
  const auth = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"};
  try {
    const data = await (await fetch("/data.bin")).arrayBuffer();
    let r = await fetch(GW + "/api/files/upload-url", {method: "POST", headers: auth,
      body: JSON.stringify({fileName: "browser.pdf", fileSize: data.byteLength, contentType: "application/pdf"})});
    out.uploadUrlStatus = r.status;
    const u = (await r.json()).data;
    out.key = u.s3Key;
    const h = {};
    for (const [k, v] of Object.entries(u.requiredHeaders)) if (k.toLowerCase() !== "content-length") h[k] = v;
    r = await fetch(u.uploadUrl, {method: "PUT", headers: h, body: data});
    out.putStatus = r.status;
    out.etag = r.headers.get("ETag") || "";
    r = await fetch(GW + "/api/files/" + u.fileId + "/confirm", {method: "POST", headers: auth,
      body: JSON.stringify({size: data.byteLength, type: "application/pdf"})});
    out.confirmStatus = r.status;
    out.counted = (await r.json()).data.counted;
    // An expired token: upload_auth refuses it, and the page can read why.
    r = await fetch(GW + "/api/files", {headers: {"Authorization": "Bearer expired.token.here"}});
    out.expiredStatus = r.status;
    out.expiredCode = (await r.json()).error.code;
  } catch (e) { out.error = String(e); }
  window.result = out;
})();
</script>`

// foreignPage is a page of another origin that tries the same with a
// token it got hold of, and a presigned URL.
const foreignPage = `<!doctype html><meta charset="utf-8"><title>foreign</title>
<script>
const GW = {{.GW}}, TOKEN = {{.Token}}, URL = {{.URL}};
(async () => {
  const out = {};
  try {
    await fetch(GW + "/api/files", {headers: {"Authorization": "Bearer " + TOKEN}});
    out.api = "read";
  } catch (e) { out.api = "blocked: " + e; }
  try {
    await fetch(URL, {method: "PUT", headers: {"Content-Type": "application/pdf"}, body: "%PDF-1.7 not yours"});
    out.put = "read";
  } catch (e) { out.put = "blocked: " + e; }
  window.result = out;
})();
</script>`

// servePage serves page (an html/template) at / and data at /data.bin from
// a loopback origin of its own, and returns that origin.
func servePage(t *testing.T, page string, vars any, data []byte) string {
	t.Helper()
	tmpl := template.Must(template.New("page").Parse(page))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_ = tmpl.Execute(w, vars)
		case "/data.bin":
			_, _ = w.Write(data)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// runPage loads url in the browser and waits for its window.result.
func runPage(t *testing.T, ctx context.Context, url string) pageResult {
	t.Helper()
	var res pageResult
	err := chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				done, err := chromedp.Evaluate[bool](`window.result !== undefined`)(ctx, tg)
				if err != nil {
					return err
				}
				if done {
					res, err = chromedp.Evaluate[pageResult](`window.result`)(ctx, tg)
					return err
				}
			}
			return context.DeadlineExceeded
		}),
	)
	if err != nil {
		t.Fatalf("page %s: %v", url, err)
	}
	return res
}

// browserCORSSite is a file API on a bucket of the test's own (whose CORS
// rule is the documented one), signing with the admin keys, with a cors
// block for origin.
func browserCORSSite(prefix, bucket, origin string) string {
	return fmt.Sprintf(`upload_auth {
		issuer {env.UGW_COGNITO_ISSUER}
		jwks_url {env.UGW_COGNITO_JWKS_URL}
		client_id {env.UGW_COGNITO_CLIENT_ID}
		cognito_endpoint {env.UGW_COGNITO_ENDPOINT}
		allowed_origins %[3]s
	}
	upload_api {
		bucket %[1]s
		region {env.UGW_S3_REGION}
		endpoint {env.UGW_S3_ENDPOINT}
		path_style
		access_key_id {env.UGW_S3_ACCESS_KEY}
		secret_access_key {env.UGW_S3_SECRET_KEY}
		kms_key {env.UGW_KMS_KEY_ID}
		prefix %[2]s
		base_path /api
		secret integration-test-secret-0123456789abcdef
		allowed_types application/pdf
		cors {
			origins %[3]s
		}
	}`, bucket, prefix, origin)
}

// A web app on another origin uploads from a real browser: it calls the
// file API with its Bearer token (the gateway's cors block answers the
// preflights), PUTs the file to the presigned URL (the bucket's documented
// CORS rule answers those, and lets it read the ETag) and confirms it, which
// counts it. A page of a third origin can neither read the API's answers
// nor PUT to a presigned URL: the preflights refuse it, so nothing of it is
// stored.
func TestBrowserCrossOriginPresignedUpload(t *testing.T) {
	data := fileBytes(t, pdfMagic, 42, 300*1024)
	// The app's origin is only known once its server listens: the page
	// reads the gateway's URL and token from vars, filled in below.
	vars := &struct{ GW, Token, URL string }{}
	app := servePage(t, appPage, vars, data)
	bucket := corsBucket(t, app)
	prefix := testPrefix(t)
	gw := startGateway(t, browserCORSSite(prefix, bucket, app))
	vars.GW, vars.Token = gw.URL, newAPIClient(t, gw, "UPLOADER").token
	ctx := newBrowser(t)

	got := runPage(t, ctx, app+"/")
	t.Logf("app page: %+v", got)
	if got.Error != "" || got.UploadURLStatus != 200 || got.PutStatus != 200 || got.ETag == "" ||
		got.ConfirmStatus != 200 || !got.Counted {
		t.Fatalf("app page: %+v", got)
	}
	if got.ExpiredStatus != 401 || got.ExpiredCode == "" {
		t.Errorf("the app page could not read upload_auth's refusal of an expired token: %+v", got)
	}
	head, err := env.S3().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &bucket, Key: &got.Key})
	if err != nil || head.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToInt64(head.ContentLength) != int64(len(data)) {
		t.Fatalf("stored object: %v %+v", err, head)
	}
	obj, err := env.S3().GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: &got.Key})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if presignSumHex(stored) != presignSumHex(data) {
		t.Errorf("stored bytes differ from the file")
	}
	if n := scrapeMetric(t, gw, `upload_gateway_uploads_total{result="ok",role="uploader"}`); n != 1 {
		t.Errorf("uploads counted: %v", n)
	}

	// A page of another origin, with the token and a presigned URL.
	signer := presign.New(s3.New(s3.Options{Region: env.Region, BaseEndpoint: aws.String(env.S3Endpoint), UsePathStyle: true}))
	foreignKey := prefix + "foreign.pdf"
	p, err := signer.PutObject(context.Background(), credentials.NewStaticCredentialsProvider(env.AccessKey, env.SecretKey, ""),
		presign.PutRequest{Bucket: bucket, Key: foreignKey, ContentType: "application/pdf", ContentLength: 18, Expires: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	foreign := servePage(t, foreignPage, struct{ GW, Token, URL string }{gw.URL, vars.Token, p.URL}, nil)
	got = runPage(t, ctx, foreign+"/")
	t.Logf("foreign page: %+v", got)
	if !strings.HasPrefix(got.API, "blocked") || !strings.HasPrefix(got.Put, "blocked") {
		t.Errorf("foreign page: %+v", got)
	}
	if _, err := env.S3().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &bucket, Key: &foreignKey}); err == nil {
		t.Errorf("the foreign page's PUT was stored")
	}
	if n := scrapeMetric(t, gw, `upload_gateway_requests_total{endpoint="OPTIONS (cors preflight)",route="`+prefix+`",status="403"}`); n != 1 {
		t.Errorf("refused preflights: %v", n)
	}
}
