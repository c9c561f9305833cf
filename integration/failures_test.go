//go:build integration

package integration_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// waitForMultipartUpload waits until a multipart upload exists under prefix,
// so that a failure test really exercises the abort path.
func waitForMultipartUpload(t *testing.T, prefix string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		out, err := env.S3().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &env.Bucket, Prefix: &prefix})
		if err == nil && len(out.Uploads) > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no multipart upload was started under %s", prefix)
}

// expectError checks a JSON error response.
func expectError(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	r := decodeResponse(t, resp)
	if resp.StatusCode != status || r.Success || r.Error.Code != code || r.Error.Message == "" {
		t.Errorf("got %d %+v, want %d with error code %s", resp.StatusCode, r, status, code)
	}
}

// A client that disconnects halfway through a large upload leaves nothing
// behind: the multipart upload that had begun is aborted.
func TestClientDisconnectMidUploadLeavesNothing(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{"part_size 5MiB"}}.block())

	tlsCfg := gw.Client.Transport.(*http.Transport).TLSClientConfig
	conn, err := tls.Dial("tcp", strings.TrimPrefix(gw.URL, "https://"), tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /disconnect.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", 64*mib)
	if _, err := io.CopyN(conn, harness.NewRandomReader(7, 64*mib), 30*mib); err != nil {
		t.Fatalf("sending the first half: %v", err)
	}
	waitForMultipartUpload(t, prefix)
	conn.Close()

	assertNothingLeft(t, prefix)
}

// Files over max_file_size are refused with 413, whether the size is
// declared or discovered while streaming, and files of the same form that
// were already stored are deleted.
func TestOversizedFileIsRefusedAndRolledBack(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{"part_size 5MiB", "max_file_size 12MiB"}}.block())

	t.Run("declared Content-Length", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, gw.URL+"/big.bin", harness.NewRandomReader(1, 30*mib))
		req.ContentLength = 30 * mib
		resp, err := gw.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		expectError(t, resp, http.StatusRequestEntityTooLarge, "FILE_TOO_LARGE")
	})
	t.Run("discovered while streaming", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, gw.URL+"/big.bin", io.MultiReader(harness.NewRandomReader(2, 30*mib)))
		req.ContentLength = -1 // chunked: the gateway only finds out by counting
		resp, err := gw.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		expectError(t, resp, http.StatusRequestEntityTooLarge, "FILE_TOO_LARGE")
	})
	t.Run("second file of a form", func(t *testing.T) {
		form, ctype := buildForm(t, []formPart{
			{field: "small", fileName: "ok.bin", body: harness.NewRandomReader(3, 1*mib)},
			{field: "big", fileName: "big.bin", body: harness.NewRandomReader(4, 20*mib)},
		})
		resp, err := gw.Client.Post(gw.URL+"/form", ctype, form)
		if err != nil {
			t.Fatal(err)
		}
		expectError(t, resp, http.StatusRequestEntityTooLarge, "FILE_TOO_LARGE")
	})
	assertNothingLeft(t, prefix)
}

// Only allowed content types are stored, and the check looks at the bytes,
// not just the declared type.
func TestDisallowedContentTypeIsRefused(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{"allowed_types image/png image/jpeg"}}.block())

	tests := []struct {
		name, fileName, declared string
		body                     []byte
	}{
		{"executable posing as png", "cat.png", "image/png", fileBytes(t, elfMagic, 5, 64*1024)},
		{"pdf not in the list", "doc.pdf", "application/pdf", fileBytes(t, pdfMagic, 6, 64*1024)},
		{"html with no declared type", "page.png", "", []byte("<!DOCTYPE html><html><script>alert(1)</script></html>")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form, ctype := buildForm(t, []formPart{
				{field: "ok", fileName: "fine.png", contentType: "image/png", body: bytes.NewReader(fileBytes(t, pngMagic, 9, 1000))},
				{field: "f", fileName: tt.fileName, contentType: tt.declared, body: bytes.NewReader(tt.body)},
			})
			resp, err := gw.Client.Post(gw.URL+"/upload", ctype, form)
			if err != nil {
				t.Fatal(err)
			}
			expectError(t, resp, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE")
		})
	}
	assertNothingLeft(t, prefix)
}

// S3 goes away in the middle of an upload: the client gets a 502 or 504 and,
// once S3 is back, the gateway's retried abort leaves nothing behind.
func TestS3StoppedMidUploadLeavesNothing(t *testing.T) {
	prefix := testPrefix(t)
	proxy, err := harness.NewFaultProxy(strings.TrimPrefix(env.S3Endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	gw := startGateway(t, gatewayOpts{prefix: prefix, endpoint: "http://" + proxy.Addr,
		lines: []string{"part_size 5MiB", "s3_timeout 10s", "abort_timeout 90s"}}.block())

	pr, pw := io.Pipe()
	go func() {
		src := harness.NewRandomReader(8, 200*mib)
		if _, err := io.CopyN(pw, src, 30*mib); err != nil {
			pw.CloseWithError(err)
			return
		}
		waitForMultipartUpload(t, prefix)
		proxy.Stop() // S3 is gone
		_, err := io.Copy(pw, src)
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest(http.MethodPut, gw.URL+"/s3-dies.bin", pr)
	resp, err := gw.Client.Do(req)
	if err == nil {
		r := decodeResponse(t, resp)
		if resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("status %d %+v, want 502 or 504", resp.StatusCode, r)
		}
		t.Logf("client got %d %s", resp.StatusCode, r.Error.Code)
	} else {
		t.Logf("client saw the connection end: %v", err)
	}
	pr.Close()

	time.Sleep(2 * time.Second)
	if err := proxy.Start(); err != nil { // S3 is back
		t.Fatal(err)
	}
	assertNothingLeft(t, prefix)
}

// In pass mode, when the app rejects the form or cannot be reached, the
// objects stored for it are deleted.
func TestUpstreamFailureInPassModeRollsBack(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusUnprocessableEntity} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			prefix := testPrefix(t)
			app, received := legacyApp(t, status)
			gw := startGateway(t, fmt.Sprintf("%s\n\treverse_proxy %s",
				gatewayOpts{prefix: prefix, lines: []string{"output pass"}}.block(), strings.TrimPrefix(app.URL, "http://")))
			form, ctype := buildForm(t, []formPart{
				{field: "title", value: "x"},
				{field: "doc", fileName: "a.pdf", body: bytes.NewReader(fileBytes(t, pdfMagic, 10, 7*mib))},
				{field: "img", fileName: "b.png", body: bytes.NewReader(fileBytes(t, pngMagic, 11, 20*mib))},
			})
			resp, err := gw.Client.Post(gw.URL+"/submit", ctype, form)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != status {
				t.Errorf("client got %d, want the app's %d", resp.StatusCode, status)
			}
			if n := len(received()); n != 1 {
				t.Errorf("the app was called %d times, want once", n)
			}
			assertNothingLeft(t, prefix)
		})
	}
	t.Run("app unreachable", func(t *testing.T) {
		prefix := testPrefix(t)
		port, _ := harness.FreePort()
		gw := startGateway(t, fmt.Sprintf("%s\n\treverse_proxy 127.0.0.1:%d",
			gatewayOpts{prefix: prefix, lines: []string{"output pass"}}.block(), port))
		form, ctype := buildForm(t, []formPart{{field: "doc", fileName: "a.txt", body: strings.NewReader("hello")}})
		resp, err := gw.Client.Post(gw.URL+"/submit", ctype, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("client got %d, want 502", resp.StatusCode)
		}
		assertNothingLeft(t, prefix)
	})
}

// Broken forms get a 400 JSON error and store nothing.
func TestMalformedFormIsRefused(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, gatewayOpts{prefix: prefix}.block())
	tests := []struct {
		name, ctype, body string
		status            int
		code              string
	}{
		{"no boundary", "multipart/form-data", "x", http.StatusBadRequest, "MALFORMED_FORM"},
		{"truncated", "multipart/form-data; boundary=XX",
			"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nhello", http.StatusBadRequest, "MALFORMED_FORM"},
		{"part without name", "multipart/form-data; boundary=XX",
			"--XX\r\nContent-Disposition: form-data; filename=\"a.txt\"\r\n\r\nhello\r\n--XX--\r\n", http.StatusBadRequest, "MALFORMED_FORM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := gw.Client.Post(gw.URL+"/upload", tt.ctype, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			expectError(t, resp, tt.status, tt.code)
		})
	}
	assertNothingLeft(t, prefix)
}
