package tus

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// infoRecorder is an httptest.ResponseRecorder that also records
// informational answers (httptest's would take the first as final).
type infoRecorder struct {
	*httptest.ResponseRecorder
	info    []int
	infoHdr []http.Header
}

func (r *infoRecorder) WriteHeader(code int) {
	if code >= 100 && code < 200 {
		r.info = append(r.info, code)
		r.infoHdr = append(r.infoHdr, r.Header().Clone())
		return
	}
	r.ResponseRecorder.WriteHeader(code)
}

// doIETF sends one request of the draft at interop version 6 unless
// the headers set another; headers are name, value pairs ("" deletes).
func doIETF(h http.Handler, method, target string, body io.Reader, headers ...string) *infoRecorder {
	r := httptest.NewRequest(method, target, body)
	r.Header.Set(InteropHeader, "6")
	r.Header.Set("X-User", "alice")
	if method == http.MethodPatch {
		r.Header.Set("Content-Type", PartialUploadType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			r.Header.Del(headers[i])
			continue
		}
		r.Header.Set(headers[i], headers[i+1])
	}
	if body == nil {
		r.ContentLength = 0
	}
	w := &infoRecorder{ResponseRecorder: httptest.NewRecorder()}
	h.ServeHTTP(w, r)
	return w
}

// chunked hides a body's length, as Transfer-Encoding: chunked does.
type chunked struct{ io.Reader }

func TestIETFRules(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string // "" means the URL of a fresh 10-byte upload
		body       string
		chunked    bool
		headers    []string
		wantStatus int
		wantInfo   bool // 104 before the final answer
		wantHeader map[string]string
		noHeader   []string
	}{
		{name: "OPTIONS announces the limits", method: "OPTIONS", path: "/files/", wantStatus: 204,
			wantHeader: map[string]string{"Upload-Limit": "min-size=0,max-size=1073741824", InteropHeader: "6"}, noHeader: []string{"Tus-Resumable"}},
		{name: "an unsupported interop version is tus", method: "POST", path: "/files/", headers: []string{InteropHeader, "2", "Upload-Length", "5"}, wantStatus: 412},
		{name: "creation with the whole body", method: "POST", path: "/files/", body: "hello", headers: []string{"Upload-Complete", "?1", "Content-Type", "text/plain"},
			wantStatus: 201, wantInfo: true, wantHeader: map[string]string{"Upload-Offset": "5", "Upload-Complete": "?1", InteropHeader: "6"}},
		{name: "creation with the whole body, interop 3", method: "POST", path: "/files/", body: "hello", headers: []string{InteropHeader, "3", "Upload-Incomplete", "?0"},
			wantStatus: 201, wantInfo: true, wantHeader: map[string]string{"Upload-Offset": "5", "Upload-Incomplete": "?0", InteropHeader: "3"}, noHeader: []string{"Upload-Complete"}},
		{name: "creation with part of the body and a length", method: "POST", path: "/files/", body: "hello", headers: []string{"Upload-Complete", "?0", "Upload-Length", "10"},
			wantStatus: 201, wantInfo: true, wantHeader: map[string]string{"Upload-Offset": "5", "Upload-Complete": "?0"}},
		{name: "creation with part of the body, length unknown", method: "POST", path: "/files/", body: "hello", headers: []string{"Upload-Complete", "?0"},
			wantStatus: 201, wantInfo: true, wantHeader: map[string]string{"Upload-Offset": "5", "Upload-Complete": "?0"}},
		{name: "creation of a chunked body that completes", method: "POST", path: "/files/", body: "hello", chunked: true, headers: []string{"Upload-Complete", "?1"},
			wantStatus: 201, wantInfo: true, wantHeader: map[string]string{"Upload-Offset": "5", "Upload-Complete": "?1"}},
		{name: "creation of an empty upload", method: "POST", path: "/files/", headers: []string{"Upload-Complete", "?1"},
			wantStatus: 201, wantHeader: map[string]string{"Upload-Offset": "0", "Upload-Complete": "?1"}},
		{name: "creation without a body", method: "POST", path: "/files/", headers: []string{"Upload-Complete", "?0", "Upload-Length", "10"},
			wantStatus: 201, wantHeader: map[string]string{"Upload-Offset": "0", "Upload-Complete": "?0"}},
		{name: "creation with a malformed Upload-Complete", method: "POST", path: "/files/", body: "hello", headers: []string{"Upload-Complete", "1"}, wantStatus: 400},
		{name: "creation with a malformed Upload-Length", method: "POST", path: "/files/", headers: []string{"Upload-Length", "-5"}, wantStatus: 400},
		{name: "creation whose Upload-Length contradicts a complete body", method: "POST", path: "/files/", body: "hello", headers: []string{"Upload-Complete", "?1", "Upload-Length", "6"}, wantStatus: 400},
		{name: "creation with a body beyond Upload-Length", method: "POST", path: "/files/", body: "hello", headers: []string{"Upload-Complete", "?0", "Upload-Length", "3"}, wantStatus: 400},
		{name: "creation beyond the maximum size", method: "POST", path: "/files/", headers: []string{"Upload-Length", "1073741825"}, wantStatus: 413},
		{name: "creation with Upload-Metadata, as tus-js-client sends it", method: "POST", path: "/files/", body: "hello", headers: []string{"Upload-Complete", "?1", "Upload-Metadata", "filename !!!"}, wantStatus: 400},
		{name: "creation by PUT", method: "PUT", path: "/files/", body: "hello", headers: []string{"Upload-Complete", "?1"},
			wantStatus: 201, wantInfo: true, wantHeader: map[string]string{"Upload-Offset": "5", "Upload-Complete": "?1"}},
		{name: "offset retrieval", method: "HEAD", wantStatus: 204,
			wantHeader: map[string]string{"Upload-Offset": "0", "Upload-Complete": "?0", "Upload-Length": "10", "Cache-Control": "no-store",
				"Upload-Limit": "min-size=0,max-size=1073741824,expires=86400", InteropHeader: "6"}, noHeader: []string{"Tus-Resumable", "Upload-Defer-Length"}},
		{name: "offset retrieval by another user", method: "HEAD", headers: []string{"X-User", "mallory"}, wantStatus: 403},
		{name: "offset retrieval of a forged id", method: "HEAD", path: "/files/bm90LWEtdG9rZW4", wantStatus: 404},
		{name: "append", method: "PATCH", body: "hello", headers: []string{"Upload-Offset", "0", "Upload-Complete", "?0"},
			wantStatus: 204, wantHeader: map[string]string{"Upload-Offset": "5", "Upload-Complete": "?0"}},
		{name: "append without application/partial-upload at interop 6", method: "PATCH", body: "hello", headers: []string{"Upload-Offset", "0", "Content-Type", "application/octet-stream"}, wantStatus: 415},
		{name: "append of any type at interop 5", method: "PATCH", body: "hello", headers: []string{InteropHeader, "5", "Upload-Offset", "0", "Content-Type", "application/octet-stream"},
			wantStatus: 204, wantHeader: map[string]string{"Upload-Offset": "5", "Upload-Complete": "?0"}},
		{name: "append without Upload-Offset", method: "PATCH", body: "hello", wantStatus: 400},
		{name: "append at the wrong offset", method: "PATCH", body: "hello", headers: []string{"Upload-Offset", "3"},
			wantStatus: 409, wantHeader: map[string]string{"Upload-Offset": "0", "Upload-Complete": "?0"}},
		{name: "append that completes", method: "PATCH", body: "helloworld", headers: []string{"Upload-Offset", "0", "Upload-Complete", "?1"},
			wantStatus: 204, wantHeader: map[string]string{"Upload-Offset": "10", "Upload-Complete": "?1"}},
		{name: "append that completes short of the length", method: "PATCH", body: "hello", headers: []string{"Upload-Offset", "0", "Upload-Complete", "?1"}, wantStatus: 400},
		{name: "append beyond the length", method: "PATCH", body: "hello world", headers: []string{"Upload-Offset", "0"}, wantStatus: 413},
		{name: "append by another user", method: "PATCH", body: "hello", headers: []string{"Upload-Offset", "0", "X-User", "mallory"}, wantStatus: 403},
		{name: "cancellation", method: "DELETE", wantStatus: 204, wantHeader: map[string]string{InteropHeader: "6"}},
		{name: "cancellation by another user", method: "DELETE", headers: []string{"X-User", "mallory"}, wantStatus: 403},
		{name: "GET is not served", method: "GET", wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.MaxSize = 1 << 30 })
			target := tt.path
			if target == "" {
				w := doIETF(e.h, "POST", "/files/", nil, "Upload-Length", "10")
				if w.Code != 201 {
					t.Fatalf("creation: %d %s", w.Code, w.Body)
				}
				target = w.Header().Get("Location")
			}
			var body io.Reader
			if tt.body != "" || tt.chunked {
				body = strings.NewReader(tt.body)
				if tt.chunked {
					body = chunked{body}
				}
			}
			w := doIETF(e.h, tt.method, target, body, tt.headers...)
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", w.Code, tt.wantStatus, w.Body)
			}
			for k, v := range tt.wantHeader {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			for _, k := range tt.noHeader {
				if got := w.Header().Get(k); got != "" {
					t.Errorf("%s = %q, want none", k, got)
				}
			}
			if tt.wantInfo != (len(w.info) > 0) {
				t.Fatalf("informational answers %v, want 104: %v", w.info, tt.wantInfo)
			}
			if tt.wantInfo {
				loc := w.infoHdr[0].Get("Location")
				if w.info[0] != 104 || !strings.HasPrefix(loc, "/files/") || loc != w.Header().Get("Location") || w.infoHdr[0].Get(InteropHeader) != "6" && w.infoHdr[0].Get(InteropHeader) != "3" {
					t.Errorf("informational %d with Location %q, %s %q; final Location %q", w.info[0], loc, InteropHeader, w.infoHdr[0].Get(InteropHeader), w.Header().Get("Location"))
				}
			}
		})
	}
}

// TestIETFPartialCreationAppendAndCompletion: creation with a part of
// the body and no length, offset retrieval on another instance, then an
// append that completes; the object is stored as tus uploads are.
func TestIETFPartialCreationAppendAndCompletion(t *testing.T) {
	e := newEnv(t, nil)
	data := randomBytes(13*mib+7, 21)
	first := 6*mib + 1
	w := doIETF(e.h, "POST", "/files/", bytes.NewReader(data[:first]), "Upload-Complete", "?0", "Content-Type", "application/pdf",
		"Content-Disposition", `attachment; filename="report.pdf"`)
	if w.Code != 201 || w.Header().Get("Upload-Offset") != strconv.Itoa(first) || len(w.info) != 1 {
		t.Fatalf("creation: %d offset %q info %v (%s)", w.Code, w.Header().Get("Upload-Offset"), w.info, w.Body)
	}
	loc := w.Header().Get("Location")
	other := e.handler(t, nil)
	w = doIETF(other, "HEAD", loc, nil)
	if w.Code != 204 || w.Header().Get("Upload-Offset") != strconv.Itoa(first) || w.Header().Get("Upload-Complete") != "?0" || w.Header().Get("Upload-Length") != "" {
		t.Fatalf("offset retrieval: %d %v", w.Code, w.Header())
	}
	if w := doIETF(other, "PATCH", loc, bytes.NewReader(data[first:first+10]), "Upload-Offset", "5"); w.Code != 409 || w.Header().Get("Upload-Offset") != strconv.Itoa(first) {
		t.Fatalf("append at a wrong offset: %d offset %q", w.Code, w.Header().Get("Upload-Offset"))
	}
	w = doIETF(other, "PATCH", loc, bytes.NewReader(data[first:]), "Upload-Offset", strconv.Itoa(first), "Upload-Complete", "?1")
	if w.Code != 204 || w.Header().Get("Upload-Offset") != strconv.Itoa(len(data)) || w.Header().Get("Upload-Complete") != "?1" {
		t.Fatalf("completing append: %d %v (%s)", w.Code, w.Header(), w.Body)
	}
	assertStored(t, e, data)
	obj, _ := e.s3.object(e.s3.objectKeys("up/")[0])
	if obj.contentType != "application/pdf" || obj.meta["original-name"] == "" {
		t.Errorf("stored type %q metadata %v, want application/pdf and the file name", obj.contentType, obj.meta)
	}
	// A retry of the completing append (its answer lost) succeeds.
	w = doIETF(e.h, "PATCH", loc, bytes.NewReader(nil), "Upload-Offset", strconv.Itoa(len(data)), "Upload-Complete", "?1")
	if w.Code != 204 || w.Header().Get("Upload-Complete") != "?1" {
		t.Errorf("retried completing append: %d %v", w.Code, w.Header())
	}
	if w := doIETF(e.h, "PATCH", loc, bytes.NewReader([]byte("x")), "Upload-Offset", "3"); w.Code != 400 {
		t.Errorf("append to a complete upload: %d, want 400", w.Code)
	}
}

// TestIETFChunkedCompletion: an append of unknown length with
// Upload-Complete: ?1 sets the length where the body ends and completes;
// one that breaks off leaves the upload open, its length unknown.
func TestIETFChunkedCompletion(t *testing.T) {
	e := newEnv(t, nil)
	data := randomBytes(7*mib+3, 22)
	w := doIETF(e.h, "POST", "/files/", nil, "Upload-Complete", "?0")
	loc := w.Header().Get("Location")
	broken := &brokenBody{r: bytes.NewReader(data[:6*mib])}
	w = doIETF(e.h, "PATCH", loc, chunked{broken}, "Upload-Offset", "0", "Upload-Complete", "?1")
	if w.Code != 204 || w.Header().Get("Upload-Complete") != "?0" || w.Header().Get("Upload-Offset") != strconv.Itoa(6*mib) {
		t.Fatalf("append that broke off: %d %v (%s)", w.Code, w.Header(), w.Body)
	}
	if h := doIETF(e.h, "HEAD", loc, nil); h.Header().Get("Upload-Length") != "" || h.Header().Get("Upload-Complete") != "?0" {
		t.Fatalf("after a broken completing append: %v, want no length, incomplete", h.Header())
	}
	w = doIETF(e.h, "PATCH", loc, chunked{bytes.NewReader(data[6*mib:])}, "Upload-Offset", strconv.Itoa(6*mib), "Upload-Complete", "?1")
	if w.Code != 204 || w.Header().Get("Upload-Complete") != "?1" || w.Header().Get("Upload-Offset") != strconv.Itoa(len(data)) {
		t.Fatalf("completing chunked append: %d %v (%s)", w.Code, w.Header(), w.Body)
	}
	assertStored(t, e, data)
}

// TestIETF104ReachesTheClient: over a real HTTP/1.1 connection, Go's
// client sees 104 Upload Resumption Supported with the upload's
// Location before the final 201.
func TestIETF104ReachesTheClient(t *testing.T) {
	e := newEnv(t, nil)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	var mu sync.Mutex
	var infos []int
	var infoLoc string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, hdr textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		infos = append(infos, code)
		if code == 104 {
			infoLoc = hdr.Get("Location")
		}
		return nil
	}}
	data := randomBytes(3*mib, 23)
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "POST", srv.URL+"/files/", bytes.NewReader(data))
	req.Header.Set(InteropHeader, "6")
	req.Header.Set("Upload-Complete", "?1")
	req.Header.Set("X-User", "alice")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode != 201 || resp.Header.Get("Upload-Complete") != "?1" {
		t.Fatalf("creation: %d %v", resp.StatusCode, resp.Header)
	}
	if len(infos) != 1 || infos[0] != 104 || infoLoc == "" || infoLoc != resp.Header.Get("Location") {
		t.Fatalf("informational answers %v with Location %q, want one 104 with the final Location %q", infos, infoLoc, resp.Header.Get("Location"))
	}
	assertStored(t, e, data)
}

// TestIETFAndTusShareUploads: an upload created by the draft is
// continued by tus, as both read the same S3 state.
func TestIETFAndTusShareUploads(t *testing.T) {
	e := newEnv(t, nil)
	w := doIETF(e.h, "POST", "/files/", strings.NewReader("hello"), "Upload-Length", "10")
	loc := w.Header().Get("Location")
	if tw := patch(e.h, loc, 5, []byte("world")); tw.Code != 204 || tw.Header().Get("Upload-Offset") != "10" {
		t.Fatalf("tus PATCH of a draft upload: %d %v", tw.Code, tw.Header())
	}
	if w := doIETF(e.h, "HEAD", loc, nil); w.Header().Get("Upload-Complete") != "?1" {
		t.Errorf("draft HEAD after tus completed it: %v", w.Header())
	}
	assertStored(t, e, []byte("helloworld"))
}
