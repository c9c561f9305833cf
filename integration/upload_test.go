//go:build integration

package integration_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// recordedForm is what the legacy app stand-in received.
type recordedForm struct {
	fields   map[string][]string
	fileSeen bool
	ctype    string
}

// legacyApp is a stand-in for a legacy web application that accepts a
// classic form post and answers with status.
func legacyApp(t *testing.T, status int) (*httptest.Server, func() []recordedForm) {
	t.Helper()
	var mu sync.Mutex
	var got []recordedForm
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost { // the harness's readiness probe
			return
		}
		rec := recordedForm{ctype: r.Header.Get("Content-Type")}
		if err := r.ParseMultipartForm(1 << 20); err == nil {
			rec.fields = r.MultipartForm.Value
			rec.fileSeen = len(r.MultipartForm.File) > 0
		}
		mu.Lock()
		got = append(got, rec)
		mu.Unlock()
		w.WriteHeader(status)
		fmt.Fprintln(w, "legacy app says", status)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []recordedForm {
		mu.Lock()
		defer mu.Unlock()
		return append([]recordedForm(nil), got...)
	}
}

// A legacy HTML form with two files and text fields is posted over HTTPS.
// The gateway stores the files in S3 with SSE-KMS and the app receives the
// same form with each file replaced by fields naming the stored object.
func TestLegacyFormPostReachesAppWithStoredFiles(t *testing.T) {
	// arrange
	prefix := testPrefix(t)
	app, received := legacyApp(t, http.StatusOK)
	gw := startGateway(t, fmt.Sprintf(`route /legacy/* {
		%s
		reverse_proxy %s
	}`, gatewayOpts{prefix: prefix, lines: []string{"output pass", "hash sha256"}}.block(), strings.TrimPrefix(app.URL, "http://")))

	report := fileBytes(t, pdfMagic, 1, 3*mib)
	photo := fileBytes(t, pngMagic, 2, 21*mib+123) // several parts
	form, ctype := buildForm(t, []formPart{
		{field: "title", value: "Quarterly report"},
		{field: "report", fileName: "Q3 report.pdf", contentType: "application/pdf", body: bytes.NewReader(report)},
		{field: "note", value: "Grüße aus Zürich ✓"},
		{field: "photo", fileName: "Фото отпуска.png", contentType: "image/png", body: bytes.NewReader(photo)},
		{field: "tags", value: "a"},
		{field: "tags", value: "b"},
	})

	// act
	resp, err := gw.Client.Post(gw.URL+"/legacy/submit", ctype, form)
	if err != nil {
		t.Fatalf("posting the form: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	// assert: the app answered and saw a form without file bytes
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	forms := received()
	if len(forms) != 1 {
		t.Fatalf("the app received %d requests, want 1", len(forms))
	}
	f := forms[0]
	if f.fileSeen {
		t.Errorf("the app received file parts; they should have been replaced")
	}
	if mt, _, _ := mime.ParseMediaType(f.ctype); mt != "multipart/form-data" {
		t.Errorf("app got Content-Type %q", f.ctype)
	}
	wantPlain := map[string][]string{"title": {"Quarterly report"}, "note": {"Grüße aus Zürich ✓"}, "tags": {"a", "b"}}
	for k, want := range wantPlain {
		if got := f.fields[k]; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("field %s = %q, want %q", k, got, want)
		}
	}

	files := []struct {
		field, name, ctype string
		data               []byte
	}{
		{"report", "Q3 report.pdf", "application/pdf", report},
		{"photo", "Фото отпуска.png", "image/png", photo},
	}
	for _, file := range files {
		get := func(suffix string) string {
			v := f.fields[file.field+"."+suffix]
			if len(v) != 1 {
				t.Errorf("field %s.%s = %q, want one value", file.field, suffix, v)
				return ""
			}
			return v[0]
		}
		sum := sha256.Sum256(file.data)
		wantSum := hex.EncodeToString(sum[:])
		key := get("key")
		if !strings.HasPrefix(key, prefix) {
			t.Errorf("%s.key = %q, not under %s", file.field, key, prefix)
		}
		if got := get("name"); got != file.name {
			t.Errorf("%s.name = %q, want %q", file.field, got, file.name)
		}
		if got := get("bucket"); got != env.Bucket {
			t.Errorf("%s.bucket = %q", file.field, got)
		}
		if got := get("size"); got != fmt.Sprint(len(file.data)) {
			t.Errorf("%s.size = %q, want %d", file.field, got, len(file.data))
		}
		if got := get("content_type"); got != file.ctype {
			t.Errorf("%s.content_type = %q, want %q", file.field, got, file.ctype)
		}
		if got := get("sha256"); got != wantSum {
			t.Errorf("%s.sha256 = %q, want %q", file.field, got, wantSum)
		}
		if get("etag") == "" {
			t.Errorf("%s.etag is empty", file.field)
		}

		// the stored bytes are the sent bytes, encrypted with the KMS key
		if got, n := objectSHA256(t, key); got != wantSum || n != int64(len(file.data)) {
			t.Errorf("object %s: %d bytes sha256 %s, want %d bytes %s", key, n, got, len(file.data), wantSum)
		}
		head := assertEncrypted(t, key)
		if aws := head.ContentType; aws == nil || *aws != file.ctype {
			t.Errorf("object %s Content-Type = %v, want %s", key, aws, file.ctype)
		}
		var dec mime.WordDecoder
		if name, err := dec.DecodeHeader(head.Metadata["original-name"]); err != nil || name != file.name {
			t.Errorf("object %s original-name metadata = %q (%v), want %q", key, head.Metadata["original-name"], err, file.name)
		}
		if tags := objectTags(t, key); tags["sha256"] != wantSum || tags["size"] != fmt.Sprint(len(file.data)) || tags["crc32c"] != harness.CRC32C(file.data) {
			t.Errorf("object %s tags = %v", key, tags)
		}
		assertChecksum(t, key, harness.CRC32C(file.data))
	}
}

// An API client PUTs a raw body and POSTs a form, and gets JSON describing
// the stored objects.
func TestRespondModeDescribesStoredFiles(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{"key {upload.filename}"}}.block())

	t.Run("raw PUT", func(t *testing.T) {
		data := fileBytes(t, pdfMagic, 3, 40*1024)
		req, _ := http.NewRequest(http.MethodPut, gw.URL+"/files/whatever", bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/pdf")
		req.Header.Set("X-File-Name", url.PathEscape("naïve résumé.pdf"))
		resp, err := gw.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r := decodeResponse(t, resp)
		if resp.StatusCode != http.StatusCreated || !r.Success || len(r.Data.Files) != 1 {
			t.Fatalf("status %d, response %+v", resp.StatusCode, r)
		}
		f := r.Data.Files[0]
		if f.S3Key != prefix+"naïve résumé.pdf" || f.FileName != "naïve résumé.pdf" || f.Size != int64(len(data)) || f.ContentType != "application/pdf" {
			t.Errorf("file = %+v", f)
		}
		sum := sha256.Sum256(data)
		if got, _ := objectSHA256(t, f.S3Key); got != hex.EncodeToString(sum[:]) {
			t.Errorf("stored sha256 %s, sent %x", got, sum)
		}
		// By default: the full-object CRC32C, no SHA-256 (hash none).
		if f.Checksum != harness.CRC32C(data) || f.ChecksumAlgorithm != "CRC32C" || f.SHA256 != "" {
			t.Errorf("response checksum %s %q sha256 %q, want CRC32C %q and no sha256", f.ChecksumAlgorithm, f.Checksum, f.SHA256, harness.CRC32C(data))
		}
		if tags := objectTags(t, f.S3Key); tags["crc32c"] != harness.CRC32C(data) || tags["size"] != fmt.Sprint(len(data)) {
			t.Errorf("object tags = %v", tags)
		}
		assertChecksum(t, f.S3Key, harness.CRC32C(data))
		if head := assertEncrypted(t, f.S3Key); head.Metadata["sha256"] != "" {
			t.Errorf("metadata sha256 = %q without hash sha256", head.Metadata["sha256"])
		}
		assertEncrypted(t, f.S3Key)
	})

	t.Run("form POST", func(t *testing.T) {
		form, ctype := buildForm(t, []formPart{
			{field: "a", fileName: `C:\Users\me\..\..\evil.txt`, body: strings.NewReader("hello")},
			{field: "b", fileName: "../../etc/passwd", body: strings.NewReader("world")},
		})
		resp, err := gw.Client.Post(gw.URL+"/upload", ctype, form)
		if err != nil {
			t.Fatal(err)
		}
		r := decodeResponse(t, resp)
		if resp.StatusCode != http.StatusCreated || len(r.Data.Files) != 2 {
			t.Fatalf("status %d, response %+v", resp.StatusCode, r)
		}
		for _, f := range r.Data.Files {
			if !strings.HasPrefix(f.S3Key, prefix) || strings.Contains(f.S3Key, "..") || strings.Count(f.S3Key[len(prefix):], "/") != 0 {
				t.Errorf("key %q escapes or nests below %s", f.S3Key, prefix)
			}
			if !strings.HasPrefix(f.ContentType, "text/plain") {
				t.Errorf("content type of %s = %q", f.FileName, f.ContentType)
			}
		}
	})

	t.Run("GET passes through", func(t *testing.T) {
		resp, err := gw.Client.Get(gw.URL + "/upload")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK { // Caddy's empty default response
			t.Errorf("GET status %d", resp.StatusCode)
		}
	})
}

// A 1 GiB raw upload streams through the gateway with peak RSS within
// part_size × (concurrency+1) plus the process's baseline.
func TestOneGiBUploadStreamsWithBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB upload")
	}
	const (
		size        = 1 << 30
		partSize    = 16 * mib
		concurrency = 4
	)
	prefix := testPrefix(t)
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{
		fmt.Sprintf("part_size %d", partSize), fmt.Sprintf("concurrency %d", concurrency),
	}}.block())
	// Warm up so the baseline includes TLS, the S3 client and the first part buffers' code paths.
	warm, _ := http.NewRequest(http.MethodPut, gw.URL+"/warm.bin", bytes.NewReader(make([]byte, 1024)))
	if resp, err := gw.Client.Do(warm); err == nil {
		resp.Body.Close()
	}
	baseline, err := gw.RSS()
	if err != nil {
		t.Fatal(err)
	}

	src := harness.NewRandomReader(42, size)
	req, _ := http.NewRequest(http.MethodPut, gw.URL+"/big.bin", src)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := gw.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r := decodeResponse(t, resp)
	if resp.StatusCode != http.StatusCreated || len(r.Data.Files) != 1 {
		t.Fatalf("status %d: %+v", resp.StatusCode, r)
	}
	peak, err := gw.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	f := r.Data.Files[0]
	if f.Size != size || f.Checksum != src.CRC32C() {
		t.Errorf("stored %d bytes CRC32C %s, sent %d bytes CRC32C %s", f.Size, f.Checksum, size, src.CRC32C())
	}
	if got, n := objectSHA256(t, f.S3Key); got != src.SHA256() || n != size {
		t.Errorf("object has %d bytes sha256 %s", n, got)
	}
	assertEncrypted(t, f.S3Key)

	bound := int64(partSize * (concurrency + 1))
	// Slack covers the Go runtime's heap headroom and TLS/HTTP buffers.
	const slack = 64 * mib
	t.Logf("1 GiB upload: baseline RSS %d MiB, peak RSS %d MiB, part buffer bound %d MiB, allowed %d MiB",
		baseline/mib, peak/mib, bound/mib, (baseline+bound+slack)/mib)
	fmt.Printf("MEASURED 1GiB-upload baseline_rss_mib=%d peak_rss_mib=%d bound_mib=%d\n", baseline/mib, peak/mib, bound/mib)
	if peak > baseline+bound+slack {
		t.Errorf("peak RSS %d MiB exceeds baseline %d MiB + bound %d MiB + slack %d MiB", peak/mib, baseline/mib, bound/mib, slack/mib)
	}
}

// A client cannot forge the fields the app trusts: plain fields named like
// the gateway's are refused, and a file name carrying a boundary and a
// fake part cannot smuggle one in.
func TestPassModeFieldsCannotBeForged(t *testing.T) {
	prefix := testPrefix(t)
	app, received := legacyApp(t, http.StatusOK)
	gw := startGateway(t, fmt.Sprintf("%s\n\treverse_proxy %s",
		gatewayOpts{prefix: prefix, lines: []string{"output pass"}}.block(), strings.TrimPrefix(app.URL, "http://")))

	t.Run("a plain field named like a stored-file field", func(t *testing.T) {
		form, ctype := buildForm(t, []formPart{{field: "doc.key", value: "uploads/victim/secret.pdf"}})
		resp, err := gw.Client.Post(gw.URL+"/submit", ctype, form)
		if err != nil {
			t.Fatal(err)
		}
		expectError(t, resp, http.StatusBadRequest, "RESERVED_FIELD")
	})

	t.Run("a file name smuggling a part", func(t *testing.T) {
		boundary := "B0UNDARY"
		evil := "x\r\n--" + boundary + "\r\nContent-Disposition: form-data; name=\"doc.key\"\r\n\r\nuploads/victim/secret.pdf"
		body := "--" + boundary + "\r\n" +
			"Content-Disposition: form-data; name=\"doc\"; filename*=UTF-8''" + url.PathEscape(evil) + "\r\n" +
			"Content-Type: text/plain\r\n\r\nhello\r\n--" + boundary + "--\r\n"
		before := len(received())
		resp, err := gw.Client.Post(gw.URL+"/submit", "multipart/form-data; boundary="+boundary, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusBadRequest {
			// Refusing the name outright is as good as neutralising it.
			r := decodeResponse(t, resp)
			t.Logf("refused: %s", r.Error.Code)
			if len(received()) != before {
				t.Errorf("the app was called for a refused form")
			}
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		forms := received()
		keys := forms[len(forms)-1].fields["doc.key"]
		if len(keys) != 1 || !strings.HasPrefix(keys[0], prefix) {
			t.Errorf("the app got doc.key = %q, want only the stored object's key", keys)
		}
	})
}
