package tus

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
)

// pngFile is a PNG image followed by n random bytes, which detection
// does not look at.
func pngFile(t *testing.T, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 2, 2))); err != nil {
		t.Fatal(err)
	}
	return append(buf.Bytes(), randomBytes(n, 9)...)
}

// exeFile is a Windows executable stub followed by n random bytes.
func exeFile(t *testing.T, n int) []byte {
	t.Helper()
	b, err := os.ReadFile("../contenttype/testdata/pe-stub.bin")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, randomBytes(n, 10)...)
}

func totalLen(bodies [][]byte) int {
	n := 0
	for _, b := range bodies {
		n += len(b)
	}
	return n
}

func typed(mt string) []string {
	if mt == "" {
		return []string{"Upload-Metadata", "filename " + base64.StdEncoding.EncodeToString([]byte("f"))}
	}
	return []string{"Upload-Metadata", "filetype " + base64.StdEncoding.EncodeToString([]byte(mt))}
}

func sniffEnv(t *testing.T, patterns ...string) *env {
	t.Helper()
	allow, err := contenttype.NewAllowlist(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, func(c *Config) { c.Types = allow; c.MaxOpenUploads = 5 })
}

// assertGone checks that a refused upload left nothing in S3.
func assertGone(t *testing.T, e *env, loc string) {
	t.Helper()
	if left := e.s3.objectKeys(""); len(left) > 0 || e.s3.openUploads() > 0 {
		t.Errorf("left after a refusal: objects %v, %d uploads", left, e.s3.openUploads())
	}
	if loc != "" {
		if w := do(e.h, "HEAD", loc, nil); w.Code != http.StatusNotFound {
			t.Errorf("HEAD after a refusal: %d, want 404", w.Code)
		}
	}
}

func TestSniffAtCreation(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		declared string
		length   int
		want     int
	}{
		{"allowed declared type", []string{"image/*"}, "image/png", 10, 201},
		{"declared type not allowed", []string{"image/*"}, "application/pdf", 10, 415},
		{"no declared type, octet-stream not allowed", []string{"image/*"}, "", 10, 415},
		{"no declared type, octet-stream allowed", []string{"image/*", "application/octet-stream"}, "", 10, 201},
		{"declared type allowed through its parent", []string{"text/plain"}, "text/csv", 10, 201},
		{"markup does not inherit text/plain", []string{"text/plain"}, "text/html", 10, 415},
		{"empty file declared as an image", []string{"image/*"}, "image/png", 0, 415},
		{"empty text file", []string{"text/plain"}, "text/plain", 0, 201},
		{"no allow-list", nil, "application/x-msdownload", 10, 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sniffEnv(t, tt.patterns...)
			w := do(e.h, "POST", "/files/", nil, append(typed(tt.declared), "Upload-Length", strconv.Itoa(tt.length))...)
			if w.Code != tt.want {
				t.Fatalf("POST: %d, want %d (%s)", w.Code, tt.want, w.Body)
			}
			if tt.want == 415 {
				if !strings.Contains(w.Body.String(), `"UNSUPPORTED_MEDIA_TYPE"`) || w.Header().Get("Location") != "" {
					t.Errorf("415 body %s, Location %q: want the JSON code and no Location", w.Body, w.Header().Get("Location"))
				}
				assertGone(t, e, "")
			}
		})
	}
}

func TestSniffFirstBytes(t *testing.T) {
	exe, img := exeFile(t, 6*mib), pngFile(t, 6*mib)
	sum := func(b []byte) string { return "sha1 " + digest(sha1.New(), string(b)) }
	tests := []struct {
		name     string
		declared string
		data     []byte
		// chunks are the PATCH bodies' lengths; the rest goes last.
		chunks []int
		// withUpload sends the first chunk with the POST.
		withUpload bool
		checksum   bool
		// want is the status of the request that completes the sniff.
		want int
	}{
		{name: "png declared png", declared: "image/png", data: img[:10000], want: 204},
		{name: "exe declared png", declared: "image/png", data: exe[:10000], want: 415},
		{name: "exe declared png, creation with upload", declared: "image/png", data: exe[:10000], withUpload: true, want: 415},
		{name: "png declared png, creation with upload", declared: "image/png", data: img[:10000], withUpload: true, want: 201},
		{name: "exe declared png in small PATCHes: refused once SniffLen bytes are in", declared: "image/png", data: exe[:10000], chunks: []int{100, 5000}, want: 415},
		{name: "exe shorter than SniffLen, refused at its last byte", declared: "image/png", data: exe[:1000], chunks: []int{300}, want: 415},
		{name: "exe declared png, several parts", declared: "image/png", data: exe, want: 415},
		{name: "exe declared png, checksummed body of several parts", declared: "image/png", data: exe, checksum: true, want: 415},
		{name: "png declared png, checksummed body of several parts", declared: "image/png", data: img, checksum: true, want: 204},
		{name: "html declared text/plain", declared: "text/plain", data: []byte("<!DOCTYPE html><html><script>alert(1)</script></html>"), want: 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sniffEnv(t, "image/*", "text/plain")
			hdrs := append(typed(tt.declared), "Upload-Length", strconv.Itoa(len(tt.data)))
			// The bodies: the chunks, then the rest.
			var bodies [][]byte
			rest := tt.data
			for _, n := range tt.chunks {
				bodies, rest = append(bodies, rest[:n]), rest[n:]
			}
			bodies = append(bodies, rest)
			var w *httptest.ResponseRecorder
			if tt.withUpload {
				w = do(e.h, "POST", "/files/", bytes.NewReader(bodies[0]), append(hdrs, "Content-Type", OffsetContentType)...)
				bodies = bodies[1:]
			} else if w = do(e.h, "POST", "/files/", nil, hdrs...); w.Code != 201 {
				t.Fatalf("POST: %d %s", w.Code, w.Body)
			}
			loc := w.Header().Get("Location")
			var sent int64
			if tt.withUpload {
				sent = int64(len(tt.data)) - int64(totalLen(bodies))
			}
			for _, body := range bodies {
				if w.Code/100 != 2 {
					break
				}
				var extra []string
				if tt.checksum {
					extra = []string{"Upload-Checksum", sum(body)}
				}
				w = patch(e.h, loc, sent, body, extra...)
				sent += int64(len(body))
			}
			if w.Code != tt.want {
				t.Fatalf("last answer %d, want %d (%s)", w.Code, tt.want, w.Body)
			}
			if tt.want == 415 {
				if !strings.Contains(w.Body.String(), `"UNSUPPORTED_MEDIA_TYPE"`) {
					t.Errorf("415 body %s, want the JSON code", w.Body)
				}
				assertGone(t, e, loc)
				return
			}
			assertStored(t, e, tt.data)
			obj, _ := e.s3.object(e.s3.objectKeys("up/")[0])
			if obj.contentType != tt.declared {
				t.Errorf("stored as %q, want %q", obj.contentType, tt.declared)
			}
		})
	}
}
