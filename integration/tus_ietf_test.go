//go:build integration

package integration_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// curlAnswer is one answer curl received: informational or final.
type curlAnswer struct {
	Status int
	Header http.Header
}

// curlIETF runs curl as alice with the IETF draft's interop header
// (version 6 unless args set another) and returns every answer it saw,
// 1xx included, in order. body, if not nil, is sent from a file.
func curlIETF(t *testing.T, method, url string, body []byte, args ...string) []curlAnswer {
	t.Helper()
	dir := t.TempDir()
	dump := filepath.Join(dir, "headers")
	cmd := []string{"-sS", "-k", "-u", "alice:alice-password", "-X", method, "-D", dump, "-o", os.DevNull, "-H", "Expect:"}
	if !strings.Contains(strings.Join(args, " "), "Upload-Draft-Interop-Version") {
		cmd = append(cmd, "-H", "Upload-Draft-Interop-Version: 6")
	}
	if body != nil {
		f := filepath.Join(dir, "body")
		if err := os.WriteFile(f, body, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd = append(cmd, "--data-binary", "@"+f)
	}
	if method == http.MethodHead {
		cmd = append(cmd, "-I")
		cmd = slicesDelete(cmd, "-X", http.MethodHead)
	}
	cmd = append(append(cmd, args...), url)
	out, cerr := exec.Command("curl", cmd...).CombinedOutput()
	raw, err := os.ReadFile(dump)
	if err != nil {
		t.Fatalf("curl %v: %v %v\n%s", cmd, cerr, err, out)
	}
	if cerr != nil {
		// An answer sent before the whole body was read (409) ends the
		// connection while curl is still sending.
		t.Logf("curl %s %s: %v %s", method, url, cerr, bytes.TrimSpace(out))
	}
	var answers []curlAnswer
	rd := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		line, err := rd.ReadLine()
		if err != nil {
			break
		}
		if line == "" {
			continue
		}
		fields := strings.Fields(line) // HTTP/1.1 201 Created, HTTP/2 104
		if len(fields) < 2 {
			t.Fatalf("curl header dump: status line %q", line)
		}
		code, _ := strconv.Atoi(fields[1])
		hdr, err := rd.ReadMIMEHeader()
		if err != nil && len(hdr) == 0 && code == 0 {
			break
		}
		answers = append(answers, curlAnswer{Status: code, Header: http.Header(hdr)})
	}
	if len(answers) == 0 {
		t.Fatalf("curl %v: no answer in %q", cmd, raw)
	}
	return answers
}

// slicesDelete removes the pair a, b from s.
func slicesDelete(s []string, a, b string) []string {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == a && s[i+1] == b {
			return append(s[:i:i], s[i+2:]...)
		}
	}
	return s
}

func final(answers []curlAnswer) curlAnswer { return answers[len(answers)-1] }

// assertStoredObject checks the one object under prefix: its bytes
// (SHA-256), SSE-KMS, type, tags; and that nothing is left under temp.
func assertStoredObject(t *testing.T, prefix, temp string, data []byte, contentType string) {
	t.Helper()
	key := onlyObject(t, prefix)
	sum, n := objectSHA256(t, key)
	want := sha256.Sum256(data)
	if n != int64(len(data)) || sum != hex.EncodeToString(want[:]) {
		t.Errorf("stored %d bytes with SHA-256 %s, want %d bytes %x", n, sum, len(data), want)
	}
	head := assertEncrypted(t, key)
	if contentType != "" && aws.ToString(head.ContentType) != contentType {
		t.Errorf("stored Content-Type %q, want %q", aws.ToString(head.ContentType), contentType)
	}
	assertSHA256Tags(t, key, data)
	assertNothingLeft(t, temp)
	_, _ = env.S3().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &env.Bucket, Key: &key})
}

// TestIETFDraftWithCurl speaks the IETF resumable-upload draft (interop
// version 6, and 3 as iOS 17 sends it) to real gateways over SeaweedFS
// with curl: creation with the whole body (104 with the Location, then
// 201 complete), creation with part of the body then offset retrieval,
// an append at a wrong offset (409 with the real offset) and a
// completing append, each on another instance; and cancellation. The
// objects equal the sources, SSE-KMS, tagged, nothing left in the
// temporary prefix.
func TestIETFDraftWithCurl(t *testing.T) {
	gws, prefix, temp := tusGateways(t, 2)
	data := fileBytes(t, pdfMagic, 61, 9*mib+13)

	t.Run("creation with the whole body", func(t *testing.T) {
		for _, proto := range []string{"--http1.1", "--http2"} {
			answers := curlIETF(t, http.MethodPost, gws[0].URL+"/tus/", data, proto, "-H", "Upload-Complete: ?1",
				"-H", "Content-Type: application/pdf", "-H", `Content-Disposition: attachment; filename="report.pdf"`)
			t.Logf("%s: answers %v", proto, answers)
			if len(answers) != 2 || answers[0].Status != 104 || answers[0].Header.Get("Location") == "" {
				t.Fatalf("%s: answers %v, want 104 with a Location, then the final one", proto, answers)
			}
			got := final(answers)
			if got.Status != http.StatusCreated || got.Header.Get("Upload-Complete") != "?1" || got.Header.Get("Upload-Offset") != strconv.Itoa(len(data)) ||
				got.Header.Get("Location") != answers[0].Header.Get("Location") {
				t.Fatalf("%s: final answer %d %v", proto, got.Status, got.Header)
			}
			assertStoredObject(t, prefix, temp, data, "application/pdf")
		}
	})

	t.Run("creation with part of the body, offset retrieval, append", func(t *testing.T) {
		first := 3*mib + 5
		answers := curlIETF(t, http.MethodPost, gws[0].URL+"/tus/", data[:first], "-H", "Upload-Complete: ?0",
			"-H", "Upload-Length: "+strconv.Itoa(len(data)), "-H", "Content-Type: application/pdf")
		created := final(answers)
		if created.Status != http.StatusCreated || created.Header.Get("Upload-Complete") != "?0" || created.Header.Get("Upload-Offset") != strconv.Itoa(first) {
			t.Fatalf("creation: %v", answers)
		}
		url := gws[1].URL + created.Header.Get("Location")
		head := final(curlIETF(t, http.MethodHead, url, nil))
		if head.Status != http.StatusNoContent || head.Header.Get("Upload-Offset") != strconv.Itoa(first) || head.Header.Get("Upload-Complete") != "?0" ||
			head.Header.Get("Upload-Length") != strconv.Itoa(len(data)) || !strings.Contains(head.Header.Get("Upload-Limit"), "max-size=") {
			t.Fatalf("offset retrieval on the other gateway: %d %v", head.Status, head.Header)
		}
		wrong := final(curlIETF(t, http.MethodPatch, url, data[first+10:], "-H", "Upload-Offset: "+strconv.Itoa(first+10),
			"-H", "Content-Type: application/partial-upload", "-H", "Upload-Complete: ?1"))
		if wrong.Status != http.StatusConflict || wrong.Header.Get("Upload-Offset") != strconv.Itoa(first) {
			t.Fatalf("append at a wrong offset: %d %v, want 409 with Upload-Offset %d", wrong.Status, wrong.Header, first)
		}
		done := final(curlIETF(t, http.MethodPatch, url, data[first:], "-H", "Upload-Offset: "+strconv.Itoa(first),
			"-H", "Content-Type: application/partial-upload", "-H", "Upload-Complete: ?1"))
		if done.Status != http.StatusNoContent || done.Header.Get("Upload-Complete") != "?1" || done.Header.Get("Upload-Offset") != strconv.Itoa(len(data)) {
			t.Fatalf("completing append: %d %v", done.Status, done.Header)
		}
		assertStoredObject(t, prefix, temp, data, "application/pdf")
	})

	t.Run("interop version 3, length unknown until the last append", func(t *testing.T) {
		v3 := []string{"-H", "Upload-Draft-Interop-Version: 3"}
		answers := curlIETF(t, http.MethodPost, gws[1].URL+"/tus/", data[:6*mib], append(v3, "-H", "Upload-Incomplete: ?1")...)
		created := final(answers)
		if answers[0].Status != 104 || created.Status != http.StatusCreated || created.Header.Get("Upload-Incomplete") != "?1" {
			t.Fatalf("creation: %v", answers)
		}
		url := gws[0].URL + created.Header.Get("Location")
		done := final(curlIETF(t, http.MethodPatch, url, data[6*mib:], append(v3, "-H", "Upload-Offset: "+strconv.Itoa(6*mib), "-H", "Upload-Incomplete: ?0")...))
		if done.Status != http.StatusNoContent || done.Header.Get("Upload-Incomplete") != "?0" {
			t.Fatalf("completing append: %d %v", done.Status, done.Header)
		}
		assertStoredObject(t, prefix, temp, data, "")
	})

	t.Run("cancellation", func(t *testing.T) {
		created := final(curlIETF(t, http.MethodPost, gws[0].URL+"/tus/", data[:6*mib], "-H", "Upload-Complete: ?0"))
		if created.Status != http.StatusCreated {
			t.Fatalf("creation: %d", created.Status)
		}
		url := gws[1].URL + created.Header.Get("Location")
		if del := final(curlIETF(t, http.MethodDelete, url, nil)); del.Status != http.StatusNoContent {
			t.Fatalf("cancellation: %d", del.Status)
		}
		if head := final(curlIETF(t, http.MethodHead, url, nil)); head.Status != http.StatusNotFound {
			t.Errorf("offset retrieval after cancellation: %d, want 404", head.Status)
		}
		assertNothingLeft(t, prefix)
		assertNothingLeft(t, temp)
	})
}

// TestIETF104SeenByGoClient: Go's client (httptrace Got1xxResponse) sees
// 104 Upload Resumption Supported from the real gateway, over HTTP/2,
// with the Location the final 201 repeats.
func TestIETF104SeenByGoClient(t *testing.T) {
	gws, prefix, temp := tusGateways(t, 1)
	data := fileBytes(t, pngMagic, 62, 2*mib)
	var infos []int
	var infoLoc string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, hdr textproto.MIMEHeader) error {
		infos = append(infos, code)
		if code == 104 {
			infoLoc = hdr.Get("Location")
		}
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodPost, gws[0].URL+"/tus/", bytes.NewReader(data))
	req.Header.Set("Upload-Draft-Interop-Version", "6")
	req.Header.Set("Upload-Complete", "?1")
	req.Header.Set("Authorization", basicAuth("alice"))
	resp, err := gws[0].Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	t.Logf("%s: informational %v, final %d", resp.Proto, infos, resp.StatusCode)
	if resp.StatusCode != http.StatusCreated || len(infos) != 1 || infos[0] != 104 || infoLoc == "" || infoLoc != resp.Header.Get("Location") {
		t.Fatalf("informational answers %v (Location %q), final %d (Location %q)", infos, infoLoc, resp.StatusCode, resp.Header.Get("Location"))
	}
	assertStoredObject(t, prefix, temp, data, "")
}

var _ = harness.S3Settings

// TestIETFDraftWithTusJSClient: tus-js-client (a client no one here
// wrote) in its IETF draft modes, ietf-draft-05 (interop version 6,
// appends as application/partial-upload) and ietf-draft-03 (interop
// version 5): 20 MiB in 4 MiB chunks, stopped mid-append on one gateway
// and resumed by a new client process on another. The object equals the
// source, SSE-KMS, tagged, nothing left in the temporary prefix.
func TestIETFDraftWithTusJSClient(t *testing.T) {
	gws, prefix, temp := tusGateways(t, 2)
	data := fileBytes(t, pdfMagic, 63, 20*mib+77)
	file := filepath.Join(t.TempDir(), "draft.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, protocol := range []string{"ietf-draft-05", "ietf-draft-03"} {
		t.Run(protocol, func(t *testing.T) {
			opts := func(kv ...any) map[string]any {
				m := map[string]any{"file": file, "chunkSize": 4 * mib, "protocol": protocol,
					"headers": map[string]string{"Authorization": basicAuth("alice")}}
				for i := 0; i < len(kv); i += 2 {
					m[kv[i].(string)] = kv[i+1]
				}
				return m
			}
			first := runTusClient(t, opts("endpoint", gws[0].URL+"/tus/", "abortAfter", 9*mib+1234))
			if first.Done || !strings.HasPrefix(first.URL, gws[0].URL+"/tus/") {
				t.Fatalf("first client: %+v", first)
			}
			url2 := gws[1].URL + strings.TrimPrefix(first.URL, gws[0].URL)
			version := map[string]string{"ietf-draft-05": "6", "ietf-draft-03": "5"}[protocol]
			head := final(curlIETF(t, http.MethodHead, url2, nil, "-H", "Upload-Draft-Interop-Version: "+version))
			t.Logf("stopped after %d bytes sent; the second gateway reports Upload-Offset %s", first.Offset, head.Header.Get("Upload-Offset"))
			if head.Status != http.StatusNoContent || head.Header.Get("Upload-Complete") != "?0" || head.Header.Get("Upload-Length") != strconv.Itoa(len(data)) {
				t.Fatalf("offset retrieval on the second gateway: %d %v", head.Status, head.Header)
			}
			second := runTusClient(t, opts("endpoint", gws[1].URL+"/tus/", "uploadUrl", url2))
			if !second.Done {
				t.Fatalf("second client: %+v", second)
			}
			assertStoredObject(t, prefix, temp, data, "application/octet-stream")
		})
	}
	if logs := gws[1].Logs(); !strings.Contains(logs, `"action":"upload"`) {
		t.Errorf("the second gateway logged no audit line for the completed uploads")
	}
}
