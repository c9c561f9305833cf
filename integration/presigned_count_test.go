//go:build integration

package integration_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
	"github.com/caddy-upload-gateway/upload-gateway/internal/fileapi"
)

// countSite is apiSite with a content type allow-list, so that confirm
// sniffs the bytes of what it counts.
func countSite(prefix string) string {
	return apiSite(prefix, "allowed_types application/pdf image/png")
}

// confirmed is the answer of POST /files/{fileId}/confirm.
type confirmed struct {
	S3Key   string `json:"s3Key"`
	Size    int64  `json:"size"`
	Counted bool   `json:"counted"`
}

// uploadAuditLines returns the file API's audit lines whose fields
// include all of want.
func uploadAuditLines(t *testing.T, gw *harness.Gateway, want map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, fields := range auditLines(t, gw) {
		match := true
		for k, v := range want {
			if fields[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, fields)
		}
	}
	return out
}

// metricsText returns the lines of the gateway's Prometheus metrics that
// start with prefix.
func metricsText(t *testing.T, gw *harness.Gateway, prefix string) string {
	t.Helper()
	resp, err := http.Get(gw.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// A browser uploads a PDF with a presigned PUT, then confirms it: the
// upload shows up in the upload metrics and in one audit line like a
// streamed one, and the object is tagged as confirmed. Confirming it again
// counts nothing.
func TestPresignedPutCountedOnConfirm(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, countSite(prefix))
	uploader := newAPIClient(t, gw, "UPLOADER")
	data := fileBytes(t, pdfMagic, 31, 200*1024)

	var u uploadURL
	if status, code := uploader.call("POST", "/files/upload-url", map[string]any{
		"fileName": "report.pdf", "fileSize": len(data), "contentType": "application/pdf",
	}, &u); status != http.StatusOK {
		t.Fatalf("upload-url: %d %s", status, code)
	}
	if status, body := send(t, "PUT", u.UploadURL, u.RequiredHeaders, data); status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, body)
	}
	if metricsText(t, gw, "upload_gateway_uploads_total{") != "" {
		t.Fatalf("counted before the confirm")
	}

	var c confirmed
	status, code := uploader.call("POST", "/files/"+u.FileID+"/confirm", map[string]any{
		"size": len(data), "type": "application/pdf", "sha256": presignSumHex(data),
	}, &c)
	if status != http.StatusOK || !c.Counted || c.Size != int64(len(data)) || c.S3Key != u.S3Key {
		t.Fatalf("confirm: %d %s %+v", status, code, c)
	}
	status, code = uploader.call("POST", "/files/"+u.FileID+"/confirm", nil, &c)
	if status != http.StatusOK || c.Counted {
		t.Fatalf("second confirm: %d %s %+v", status, code, c)
	}

	for series, want := range map[string]float64{
		`upload_gateway_uploads_total{result="ok",role="uploader"}`:                                                  1,
		`upload_gateway_upload_bytes_total{role="uploader"}`:                                                         float64(len(data)),
		`upload_gateway_file_size_bytes_count`:                                                                       1,
		`upload_gateway_upload_duration_seconds_count{result="ok",role="uploader"}`:                                  1,
		`upload_gateway_requests_total{endpoint="POST /files/{fileId}/confirm",route="` + prefix + `",status="200"}`: 2,
	} {
		if got := scrapeMetric(t, gw, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	lines := uploadAuditLines(t, gw, map[string]any{"action": "upload", "method": fileapi.MethodPresigned, "key": u.S3Key})
	if len(lines) != 1 || lines[0]["result"] != "ok" || lines[0]["size"] != float64(len(data)) || lines[0]["duration"] == nil {
		t.Errorf("audit lines of the upload: %v", lines)
	}
	if tags := objectTags(t, u.S3Key); tags[fileapi.ConfirmedTag] == "" {
		t.Errorf("tags %v, want %s", tags, fileapi.ConfirmedTag)
	}
	assertEncrypted(t, u.S3Key)
}

// What S3 stored is checked on confirm: bytes that are not the type the URL
// was signed for (HTML sent as a PNG), a size other than the client
// meant, are deleted, answered 4xx and counted as refused uploads. The same
// holds for a browser form POST.
func TestPresignedUploadRefusedOnConfirm(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, countSite(prefix))
	uploader := newAPIClient(t, gw, "UPLOADER")

	putAndConfirm := func(t *testing.T, contentType string, data []byte, confirm map[string]any) (uploadURL, int, string) {
		t.Helper()
		var u uploadURL
		if status, code := uploader.call("POST", "/files/upload-url", map[string]any{
			"fileName": "f", "fileSize": len(data), "contentType": contentType,
		}, &u); status != http.StatusOK {
			t.Fatalf("upload-url: %d %s", status, code)
		}
		if status, body := send(t, "PUT", u.UploadURL, u.RequiredHeaders, data); status != http.StatusOK {
			t.Fatalf("PUT: %d %s", status, body)
		}
		status, code := uploader.call("POST", "/files/"+u.FileID+"/confirm", confirm, nil)
		return u, status, code
	}

	t.Run("HTML sent as a PNG", func(t *testing.T) {
		html := []byte("<!DOCTYPE html><html><body><script>alert(1)</script></body></html>")
		u, status, code := putAndConfirm(t, "image/png", html, nil)
		if status != http.StatusUnsupportedMediaType || code != "CONTENT_TYPE_MISMATCH" {
			t.Errorf("confirm: %d %s, want 415 CONTENT_TYPE_MISMATCH", status, code)
		}
		presignAssertAbsent(t, u.S3Key)
	})
	t.Run("another size than the client meant", func(t *testing.T) {
		data := fileBytes(t, pngMagic, 32, 4096)
		u, status, code := putAndConfirm(t, "image/png", data, map[string]any{"size": len(data) + 1})
		if status != http.StatusBadRequest || code != "SIZE_MISMATCH" {
			t.Errorf("confirm: %d %s, want 400 SIZE_MISMATCH", status, code)
		}
		presignAssertAbsent(t, u.S3Key)
	})
	t.Run("a form POST of an ELF as a PDF", func(t *testing.T) {
		var p struct {
			URL    string            `json:"url"`
			Fields map[string]string `json:"fields"`
			FileID string            `json:"fileId"`
			S3Key  string            `json:"s3Key"`
		}
		if status, code := uploader.call("POST", "/files/upload-post", map[string]any{
			"fileName": "doc.pdf", "contentType": "application/pdf",
		}, &p); status != http.StatusOK {
			t.Fatalf("upload-post: %d %s", status, code)
		}
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, v := range p.Fields {
			_ = mw.WriteField(k, v)
		}
		fw, _ := mw.CreateFormFile("file", "doc.pdf")
		_, _ = fw.Write(fileBytes(t, elfMagic, 33, 3000))
		_ = mw.Close()
		resp, err := plain.Post(p.URL, mw.FormDataContentType(), &buf)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("form POST: %d", resp.StatusCode)
		}
		status, code := uploader.call("POST", "/files/"+p.FileID+"/confirm", nil, nil)
		if status != http.StatusUnsupportedMediaType {
			t.Errorf("confirm: %d %s, want 415", status, code)
		}
		presignAssertAbsent(t, p.S3Key)
	})

	if got := scrapeMetric(t, gw, `upload_gateway_uploads_total{result="rejected",role="uploader"}`); got != 3 {
		t.Errorf("refused uploads counted: %v, want 3", got)
	}
	if lines := uploadAuditLines(t, gw, map[string]any{"action": "upload", "method": fileapi.MethodPresigned, "result": "rejected"}); len(lines) != 3 {
		t.Errorf("audit lines of refused uploads: %v", lines)
	}
	assertNothingLeft(t, prefix)
}

// A multipart upload through the REST API is counted when it is completed,
// with its bytes and its number of parts; a confirm of the object it made
// does not count it twice.
func TestMultipartCountedOnComplete(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, countSite(prefix))
	uploader := newAPIClient(t, gw, "UPLOADER")
	const partSize = 5 * mib
	data := fileBytes(t, pdfMagic, 34, 2*partSize+4321)

	var in initiated
	if status, code := uploader.call("POST", "/files/multipart/initiate", map[string]any{
		"fileName": "big.pdf", "fileSize": len(data), "contentType": "application/pdf", "partSize": partSize,
	}, &in); status != http.StatusOK || len(in.PartURLs) != 3 {
		t.Fatalf("initiate: %d %s %d part URLs", status, code, len(in.PartURLs))
	}
	for i, p := range in.PartURLs {
		part := data[i*partSize : min((i+1)*partSize, len(data))]
		if status, body := send(t, "PUT", p.URL, p.Headers, part); status != http.StatusOK {
			t.Fatalf("part %d: %d %s", p.PartNumber, status, body)
		}
	}
	if status, code := uploader.call("POST", "/files/multipart/complete", map[string]any{
		"fileId": in.FileID, "uploadId": in.UploadID, "uploadToken": in.UploadToken,
	}, nil); status != http.StatusOK {
		t.Fatalf("complete: %d %s", status, code)
	}
	var c confirmed
	if status, code := uploader.call("POST", "/files/"+in.FileID+"/confirm", nil, &c); status != http.StatusOK || c.Counted {
		t.Errorf("confirm of a multipart object: %d %s %+v", status, code, c)
	}

	for series, want := range map[string]float64{
		`upload_gateway_uploads_total{result="ok",role="uploader"}`: 1,
		`upload_gateway_upload_bytes_total{role="uploader"}`:        float64(len(data)),
		`upload_gateway_multipart_parts_count`:                      1,
		`upload_gateway_multipart_parts_sum`:                        3,
		`upload_gateway_file_size_bytes_sum`:                        float64(len(data)),
	} {
		if got := scrapeMetric(t, gw, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	lines := uploadAuditLines(t, gw, map[string]any{"action": "upload", "method": fileapi.MethodMultipart, "key": in.S3Key})
	if len(lines) != 1 || lines[0]["result"] != "ok" || lines[0]["parts"] != float64(3) || lines[0]["size"] != float64(len(data)) || lines[0]["upload_id"] != in.UploadID {
		t.Errorf("audit lines of the upload: %v", lines)
	}
	if got, n := objectSHA256(t, in.S3Key); got != presignSumHex(data) || n != int64(len(data)) {
		t.Errorf("object: %d bytes %s", n, got)
	}
	assertEncrypted(t, in.S3Key)
}

// An executable declared as a PDF and uploaded in parts straight to S3
// is caught when the gateway completes it: its first bytes are sniffed,
// the object is deleted, the client gets 415, and the upload is counted
// as rejected.
func TestMultipartSniffedOnComplete(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, countSite(prefix))
	uploader := newAPIClient(t, gw, "UPLOADER")
	const partSize = 5 * mib
	data := fileBytes(t, elfMagic, 35, partSize+100)

	var in initiated
	if status, code := uploader.call("POST", "/files/multipart/initiate", map[string]any{
		"fileName": "invoice.pdf", "fileSize": len(data), "contentType": "application/pdf", "partSize": partSize,
	}, &in); status != http.StatusOK || len(in.PartURLs) != 2 {
		t.Fatalf("initiate: %d %s %d part URLs", status, code, len(in.PartURLs))
	}
	for i, p := range in.PartURLs {
		part := data[i*partSize : min((i+1)*partSize, len(data))]
		if status, body := send(t, "PUT", p.URL, p.Headers, part); status != http.StatusOK {
			t.Fatalf("part %d: %d %s", p.PartNumber, status, body)
		}
	}
	status, code := uploader.call("POST", "/files/multipart/complete", map[string]any{
		"fileId": in.FileID, "uploadId": in.UploadID, "uploadToken": in.UploadToken,
	}, nil)

	if status != http.StatusUnsupportedMediaType || code != "CONTENT_TYPE_MISMATCH" {
		t.Errorf("complete of an executable declared a PDF: %d %s, want 415 CONTENT_TYPE_MISMATCH", status, code)
	}
	presignAssertAbsent(t, in.S3Key)
	assertNothingLeft(t, prefix)
	if got := scrapeMetric(t, gw, `upload_gateway_uploads_total{result="rejected",role="uploader"}`); got != 1 {
		t.Errorf("rejected uploads counted: %v, want 1", got)
	}
}
