//go:build integration

package integration_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// apiSite is a gateway with the login API and the file API; URLs are signed
// with per-user STS sessions of SeaweedFS's UploadRole. lines are extra
// upload_api subdirectives.
func apiSite(prefix string, lines ...string) string {
	return `upload_auth {
		issuer {env.UGW_COGNITO_ISSUER}
		jwks_url {env.UGW_COGNITO_JWKS_URL}
		client_id {env.UGW_COGNITO_CLIENT_ID}
		cognito_endpoint {env.UGW_COGNITO_ENDPOINT}
	}
	` + apiBlock(prefix, lines...)
}

// apiBlock is apiSite's upload_api block alone, with extra subdirectives.
func apiBlock(prefix string, lines ...string) string {
	extra := ""
	if len(lines) > 0 {
		extra = "\n\t\t" + strings.Join(lines, "\n\t\t")
	}
	return fmt.Sprintf(`upload_api {
		%s
		prefix %s
		base_path /api
		role_arn {env.UGW_STS_ROLE_ARN}
		sts_endpoint {env.UGW_STS_ENDPOINT}
		# SeaweedFS rejects temporary credentials in POST policies
		post_policy_credentials gateway
		secret integration-test-secret-0123456789abcdef
		part_size 5MiB%s
	}`, harness.S3Settings(""), prefix, extra)
}

// apiClient calls the file API as one user.
type apiClient struct {
	t     *testing.T
	gw    *harness.Gateway
	token string
}

func newAPIClient(t *testing.T, gw *harness.Gateway, who string) *apiClient {
	t.Helper()
	l := login(t, gw.Client, gw.URL, cognitoEnv(t, who+"_EMAIL"), cognitoEnv(t, who+"_PASSWORD"))
	if l.status != http.StatusOK {
		t.Fatalf("%s login: %d %+v", who, l.status, l.body)
	}
	return &apiClient{t: t, gw: gw, token: l.body.Data.Token}
}

// call sends a request to the file API and decodes data into out.
func (c *apiClient) call(method, path string, body any, out any) (int, string) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.gw.URL+"/api"+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.gw.Client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env struct {
		Success bool            `json:"success"`
		Data    json.RawMessage `json:"data"`
		Error   struct{ Code string }
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		c.t.Fatalf("%s %s: %d, not JSON: %q", method, path, resp.StatusCode, raw)
	}
	if out != nil && env.Success {
		if err := json.Unmarshal(env.Data, out); err != nil {
			c.t.Fatalf("decoding %s: %v", raw, err)
		}
	}
	return resp.StatusCode, env.Error.Code
}

// plain is a client with no credentials, as a browser or curl would be.
var plain = &http.Client{}

// send sends body to a presigned URL with the given headers.
func send(t *testing.T, method, url string, headers map[string]string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	for k, v := range headers {
		if strings.EqualFold(k, "Content-Length") {
			continue // net/http sets it from the body
		}
		req.Header.Set(k, v)
	}
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type uploadURL struct {
	UploadURL       string            `json:"uploadUrl"`
	FileID          string            `json:"fileId"`
	S3Key           string            `json:"s3Key"`
	ExpiresIn       int               `json:"expiresIn"`
	RequiredHeaders map[string]string `json:"requiredHeaders"`
}

type partURL struct {
	PartNumber int    `json:"partNumber"`
	URL        string `json:"url"`
	Headers    map[string]string
}

type initiated struct {
	UploadID    string    `json:"uploadId"`
	FileID      string    `json:"fileId"`
	S3Key       string    `json:"s3Key"`
	PartSize    int64     `json:"partSize"`
	TotalParts  int       `json:"totalParts"`
	PartURLs    []partURL `json:"partUrls"`
	UploadToken string    `json:"uploadToken"`
}

// A client uploads straight to S3 with URLs from the gateway; S3 itself
// refuses any other use of them.
func TestPresignedSinglePutAndPost(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, apiSite(prefix))
	uploader := newAPIClient(t, gw, "UPLOADER")
	data := fileBytes(t, pdfMagic, 21, 300*1024)

	var u uploadURL
	if status, code := uploader.call("POST", "/files/upload-url", map[string]any{
		"fileName": "Quartalsbericht Ü3.pdf", "fileSize": len(data), "contentType": "application/pdf",
		"metadata": map[string]string{"project": "apollo", "uploaded-by": "someone-else"},
	}, &u); status != http.StatusOK {
		t.Fatalf("upload-url: %d %s", status, code)
	}
	if !strings.HasPrefix(u.S3Key, prefix+"users/") || u.ExpiresIn <= 0 || u.RequiredHeaders["Content-Type"] != "application/pdf" {
		t.Fatalf("upload-url answer: %+v", u)
	}

	t.Run("a larger body is refused by S3", func(t *testing.T) {
		if status, _ := send(t, "PUT", u.UploadURL, u.RequiredHeaders, append(data, 'x')); status < 400 {
			t.Errorf("status %d", status)
		}
	})
	t.Run("another content type is refused by S3", func(t *testing.T) {
		h := map[string]string{}
		for k, v := range u.RequiredHeaders {
			h[k] = v
		}
		h["Content-Type"] = "text/html"
		if status, _ := send(t, "PUT", u.UploadURL, h, data); status < 400 {
			t.Errorf("status %d", status)
		}
	})
	t.Run("a URL pointed at another user's prefix is refused by S3", func(t *testing.T) {
		tampered := regexp.MustCompile(`/users/[^/]+/`).ReplaceAllString(u.UploadURL, "/users/someone-else/")
		if tampered == u.UploadURL {
			t.Fatalf("could not tamper with %s", u.UploadURL)
		}
		if status, _ := send(t, "PUT", tampered, u.RequiredHeaders, data); status < 400 {
			t.Errorf("status %d", status)
		}
	})
	t.Run("a tampered expiry is refused by S3", func(t *testing.T) {
		tampered := regexp.MustCompile(`X-Amz-Expires=\d+`).ReplaceAllString(u.UploadURL, "X-Amz-Expires=604800")
		if status, _ := send(t, "PUT", tampered, u.RequiredHeaders, data); status < 400 {
			t.Errorf("status %d", status)
		}
	})
	t.Run("the URL works as given", func(t *testing.T) {
		if status, body := send(t, "PUT", u.UploadURL, u.RequiredHeaders, data); status != http.StatusOK {
			t.Fatalf("PUT: %d %s", status, body)
		}
		head := assertEncrypted(t, u.S3Key)
		if head.Metadata["project"] != "apollo" || head.Metadata["uploaded-by"] == "someone-else" {
			t.Errorf("metadata = %v", head.Metadata)
		}
		var info struct {
			FileName string `json:"fileName"`
			Size     int64  `json:"size"`
		}
		if status, _ := uploader.call("GET", "/files/"+u.FileID, nil, &info); status != 200 || info.FileName != "Quartalsbericht Ü3.pdf" || info.Size != int64(len(data)) {
			t.Errorf("file details: %d %+v", status, info)
		}
	})

	t.Run("browser form POST policy", func(t *testing.T) {
		var p struct {
			URL    string            `json:"url"`
			Fields map[string]string `json:"fields"`
			S3Key  string            `json:"s3Key"`
		}
		small := fileBytes(t, pngMagic, 22, 5000)
		if status, code := uploader.call("POST", "/files/upload-post", map[string]any{
			"fileName": "photo.png", "fileSize": len(small), "contentType": "image/png",
		}, &p); status != http.StatusOK {
			t.Fatalf("upload-post: %d %s", status, code)
		}
		post := func(body []byte) int {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			for k, v := range p.Fields {
				_ = mw.WriteField(k, v)
			}
			fw, _ := mw.CreateFormFile("file", "photo.png")
			_, _ = fw.Write(body)
			_ = mw.Close()
			resp, err := plain.Post(p.URL, mw.FormDataContentType(), &buf)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode >= 300 {
				b, _ := io.ReadAll(resp.Body)
				t.Logf("form POST answered %d: %s (fields %v)", resp.StatusCode, b, p.Fields)
			}
			return resp.StatusCode
		}
		if status := post(append(small, make([]byte, 100)...)); status < 400 {
			t.Errorf("a larger file was accepted: %d", status)
		}
		if status := post(small); status >= 300 {
			t.Fatalf("form POST: %d", status)
		}
		assertEncrypted(t, p.S3Key)
	})
}

// A large file goes up in parts; the client "crashes" after one part,
// resumes from the parts list, and the server checks the total on completion.
func TestMultipartUploadResumesAfterCrash(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, apiSite(prefix))
	uploader := newAPIClient(t, gw, "UPLOADER")
	const partSize = 5 * mib
	data := fileBytes(t, pdfMagic, 23, 2*partSize+777)
	parts := [][]byte{data[:partSize], data[partSize : 2*partSize], data[2*partSize:]}

	var in initiated
	if status, code := uploader.call("POST", "/files/multipart/initiate", map[string]any{
		"fileName": "dataset.bin", "fileSize": len(data), "contentType": "application/pdf", "partSize": partSize,
	}, &in); status != http.StatusOK {
		t.Fatalf("initiate: %d %s", status, code)
	}
	if in.TotalParts != 3 || len(in.PartURLs) != 3 || in.UploadToken == "" {
		t.Fatalf("initiate answer: parts %d, urls %d", in.TotalParts, len(in.PartURLs))
	}
	if status, body := send(t, "PUT", in.PartURLs[0].URL, in.PartURLs[0].Headers, parts[0]); status != http.StatusOK {
		t.Fatalf("part 1: %d %s", status, body)
	}

	// The client crashed: it kept only fileId, uploadId and uploadToken.
	var listed struct {
		Parts []struct {
			PartNumber int   `json:"partNumber"`
			Size       int64 `json:"size"`
		} `json:"parts"`
	}
	if status, code := uploader.call("GET", "/files/multipart/"+in.UploadID+"/parts?fileId="+in.FileID, nil, &listed); status != http.StatusOK {
		t.Fatalf("parts: %d %s", status, code)
	}
	if len(listed.Parts) != 1 || listed.Parts[0].PartNumber != 1 || listed.Parts[0].Size != partSize {
		t.Fatalf("parts after the crash: %+v", listed.Parts)
	}
	var signed struct {
		PartURLs []partURL `json:"partUrls"`
	}
	if status, code := uploader.call("POST", "/files/multipart/sign-parts", map[string]any{
		"fileId": in.FileID, "uploadId": in.UploadID, "uploadToken": in.UploadToken, "partNumbers": []int{2, 3},
	}, &signed); status != http.StatusOK || len(signed.PartURLs) != 2 {
		t.Fatalf("sign-parts: %d %s %d", status, code, len(signed.PartURLs))
	}
	for i, p := range signed.PartURLs {
		if status, body := send(t, "PUT", p.URL, p.Headers, parts[i+1]); status != http.StatusOK {
			t.Fatalf("part %d: %d %s", p.PartNumber, status, body)
		}
	}
	var done struct {
		S3Key string `json:"s3Key"`
		Size  int64  `json:"size"`
	}
	if status, code := uploader.call("POST", "/files/multipart/complete", map[string]any{
		"fileId": in.FileID, "uploadId": in.UploadID, "uploadToken": in.UploadToken,
	}, &done); status != http.StatusOK {
		t.Fatalf("complete: %d %s", status, code)
	}
	sum := sha256.Sum256(data)
	if got, n := objectSHA256(t, done.S3Key); got != fmt.Sprintf("%x", sum) || n != int64(len(data)) {
		t.Errorf("object: %d bytes %s", n, got)
	}
	assertEncrypted(t, done.S3Key)

	t.Run("a short upload is refused and aborted", func(t *testing.T) {
		var in initiated
		uploader.call("POST", "/files/multipart/initiate", map[string]any{
			"fileName": "short.bin", "fileSize": len(data), "contentType": "application/pdf", "partSize": partSize,
		}, &in)
		for i := range 2 {
			send(t, "PUT", in.PartURLs[i].URL, in.PartURLs[i].Headers, parts[i])
		}
		status, code := uploader.call("POST", "/files/multipart/complete", map[string]any{
			"fileId": in.FileID, "uploadId": in.UploadID, "uploadToken": in.UploadToken,
		}, nil)
		if status != http.StatusBadRequest {
			t.Errorf("complete of a short upload: %d %s", status, code)
		}
		out, err := env.S3().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &env.Bucket, Prefix: &prefix})
		if err != nil || len(out.Uploads) != 0 {
			t.Errorf("multipart uploads left: %v %v", out, err)
		}
	})
}

// Roles decide who may do what: viewers may not upload, uploaders may not
// touch other users' files, admins may.
func TestRolePoliciesOnTheFileAPI(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, apiSite(prefix))
	admin, uploader, viewer := newAPIClient(t, gw, "ADMIN"), newAPIClient(t, gw, "UPLOADER"), newAPIClient(t, gw, "VIEWER")

	put := func(c *apiClient, name string) uploadURL {
		t.Helper()
		data := []byte("contents of " + name)
		var u uploadURL
		if status, code := c.call("POST", "/files/upload-url", map[string]any{"fileName": name, "fileSize": len(data), "contentType": "text/plain"}, &u); status != 200 {
			t.Fatalf("upload-url %s: %d %s", name, status, code)
		}
		if status, body := send(t, "PUT", u.UploadURL, u.RequiredHeaders, data); status != 200 {
			t.Fatalf("PUT %s: %d %s", name, status, body)
		}
		return u
	}
	adminFile, uploaderFile := put(admin, "admin.txt"), put(uploader, "mine.txt")

	cases := []struct {
		name         string
		c            *apiClient
		method, path string
		body         any
		want         int
	}{
		{"viewer cannot get upload URLs", viewer, "POST", "/files/upload-url", map[string]any{"fileName": "v.txt", "fileSize": 3, "contentType": "text/plain"}, 403},
		{"viewer cannot start multipart uploads", viewer, "POST", "/files/multipart/initiate", map[string]any{"fileName": "v.bin", "fileSize": 6 << 20, "contentType": "text/plain"}, 403},
		{"viewer may read any file", viewer, "GET", "/files/" + uploaderFile.FileID + "/download-url", nil, 200},
		{"uploader cannot read another user's file", uploader, "GET", "/files/" + adminFile.FileID, nil, 403},
		{"uploader cannot download another user's file", uploader, "GET", "/files/" + adminFile.FileID + "/download-url", nil, 403},
		{"uploader cannot delete another user's file", uploader, "DELETE", "/files/" + adminFile.FileID, nil, 403},
		{"uploader cannot list all files", uploader, "GET", "/files?scope=all", nil, 403},
		{"uploader reads own file", uploader, "GET", "/files/" + uploaderFile.FileID, nil, 200},
		{"admin reads the uploader's file", admin, "GET", "/files/" + uploaderFile.FileID, nil, 200},
		{"too large for a single PUT", uploader, "POST", "/files/upload-url", map[string]any{"fileName": "big.iso", "fileSize": 200 << 20, "contentType": "text/plain"}, 413},
		{"unknown route", uploader, "GET", "/files/multipart/nothing/here/x", nil, 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if status, code := tc.c.call(tc.method, tc.path, tc.body, nil); status != tc.want {
				t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, status, code, tc.want)
			}
		})
	}

	t.Run("admin downloads and deletes the uploader's file", func(t *testing.T) {
		var d struct {
			DownloadURL string `json:"downloadUrl"`
		}
		if status, code := admin.call("GET", "/files/"+uploaderFile.FileID+"/download-url", nil, &d); status != 200 {
			t.Fatalf("download-url: %d %s", status, code)
		}
		if status, body := send(t, "GET", d.DownloadURL, nil, nil); status != 200 || body != "contents of mine.txt" {
			t.Errorf("download of %s: %d %q", d.DownloadURL, status, body)
		}
		if status, code := admin.call("DELETE", "/files/"+uploaderFile.FileID, nil, nil); status != 200 {
			t.Fatalf("delete: %d %s", status, code)
		}
		if _, err := env.S3().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &env.Bucket, Key: &uploaderFile.S3Key}); err == nil {
			t.Errorf("the file still exists")
		}
	})

	t.Run("listing: own for uploaders, all for admins", func(t *testing.T) {
		var own, all struct {
			Files []struct {
				S3Key string `json:"s3Key"`
			} `json:"files"`
		}
		uploader.call("GET", "/files", nil, &own)
		admin.call("GET", "/files?scope=all", nil, &all)
		for _, f := range own.Files {
			if f.S3Key == adminFile.S3Key {
				t.Errorf("the uploader's listing shows the admin's file")
			}
		}
		found := false
		for _, f := range all.Files {
			found = found || f.S3Key == adminFile.S3Key
		}
		if !found {
			t.Errorf("the admin's listing misses %s: %+v", adminFile.S3Key, all.Files)
		}
	})

	t.Run("STS is called once per role and user", func(t *testing.T) {
		for range 10 {
			uploader.call("POST", "/files/upload-url", map[string]any{"fileName": "n.txt", "fileSize": 3, "contentType": "text/plain"}, nil)
		}
		ok := scrapeMetric(t, gw, `upload_gateway_sts_requests_total{result="ok"}`)
		// admin, uploader and viewer each signed: three sessions.
		if ok != 3 {
			t.Errorf("AssumeRole calls = %v, want 3 (one per user)", ok)
		}
	})
}

// scrapeMetric reads one sample from the gateway's Prometheus metrics.
func scrapeMetric(t *testing.T, gw *harness.Gateway, series string) float64 {
	t.Helper()
	resp, err := http.Get(gw.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	name, _, _ := strings.Cut(series, "{")
	var similar []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name) {
			similar = append(similar, line)
		}
	}
	t.Fatalf("series %s not found in /metrics; %s has:\n%s", series, name, strings.Join(similar, "\n"))
	return 0
}
