//go:build integration

package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

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
// rule for origin, and deletes it (and what is in it) when the test ends.
// The shared bucket's CORS is never touched.
func corsBucket(t *testing.T, origin string) string {
	t.Helper()
	ctx := context.Background()
	bucket := fmt.Sprintf("it-cors-%d", rand.Uint32())
	client := env.S3()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("CreateBucket %s: %v", bucket, err)
	}
	t.Cleanup(func() {
		out, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket})
		if err == nil {
			for _, o := range out.Contents {
				_, _ = client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: o.Key})
			}
		}
		if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
			t.Logf("DeleteBucket %s: %v", bucket, err)
		}
	})
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
	return strings.Replace(apiSite(prefix), "part_size 5MiB", fmt.Sprintf(`part_size 5MiB
		cors {
			origins %s
			max_age 5m
		}`, strings.Join(append([]string{appOrigin}, origins...), " ")), 1)
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
