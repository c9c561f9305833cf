package tus

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"hash/crc32"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

const mib = 1 << 20

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	s3    *fakeS3
	clock *clock
	h     *Handler
}

// newEnv returns a handler over a fake S3; the user is the X-User header.
func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	clk := &clock{t: time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)}
	f := newFakeS3(clk.now)
	e := &env{s3: f, clock: clk}
	e.h = e.handler(t, mod)
	return e
}

// handler returns another instance sharing e's S3 and clock.
func (e *env) handler(t *testing.T, mod func(*Config)) *Handler {
	t.Helper()
	cfg := Config{
		Tags:       true,
		Bucket:     "b",
		Prefix:     "up/",
		Encryption: s3limits.Encryption{Mode: types.ServerSideEncryptionAwsKms, KMSKeyID: "alias/k"},
		Secrets:    [][]byte{testSecret},
		PartSize:   5 * mib,
		User:       func(r *http.Request) string { return r.Header.Get("X-User") },
		Now:        e.clock.now,
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(e.s3, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// do sends one request; headers are name, value pairs. Tus-Resumable and
// X-User alice are set unless given.
func do(h http.Handler, method, target string, body io.Reader, headers ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, body)
	r.Header.Set("Tus-Resumable", Version)
	r.Header.Set("X-User", "alice")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			r.Header.Del(headers[i])
			continue
		}
		r.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func (e *env) create(t *testing.T, length int64) string {
	t.Helper()
	w := do(e.h, "POST", "/files/", nil, "Upload-Length", strconv.FormatInt(length, 10),
		"Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte("a.bin"))+",filetype "+base64.StdEncoding.EncodeToString([]byte("application/pdf")))
	if w.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	return w.Header().Get("Location")
}

func patch(h http.Handler, loc string, offset int64, body []byte, headers ...string) *httptest.ResponseRecorder {
	return do(h, "PATCH", loc, bytes.NewReader(body), append([]string{"Content-Type", OffsetContentType, "Upload-Offset", strconv.FormatInt(offset, 10)}, headers...)...)
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestOptions(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxSize = 1 << 30 })
	w := do(e.h, "OPTIONS", "/files/", nil, "Tus-Resumable", "")
	want := map[string]string{
		"Tus-Resumable": "1.0.0", "Tus-Version": "1.0.0", "Tus-Max-Size": "1073741824",
		"Tus-Extension":          "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum",
		"Tus-Checksum-Algorithm": "sha1,md5,crc32,sha256,sha512",
	}
	if w.Code != http.StatusNoContent {
		t.Errorf("status %d, want 204", w.Code)
	}
	for k, v := range want {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

// TestRules checks the tus 1.0 header and status rules one by one.
func TestRules(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name       string
		method     string
		path       string // "" means the upload URL of a fresh 10-byte upload
		body       string
		headers    []string
		wantStatus int
		wantHeader map[string]string
	}{
		{name: "POST without Tus-Resumable", method: "POST", path: "/files/", headers: []string{"Tus-Resumable", "", "Upload-Length", "5"},
			wantStatus: 412, wantHeader: map[string]string{"Tus-Version": "1.0.0"}},
		{name: "PATCH with another Tus-Resumable", method: "PATCH", headers: []string{"Tus-Resumable", "0.2.2", "Content-Type", OffsetContentType, "Upload-Offset", "0"},
			wantStatus: 412, wantHeader: map[string]string{"Tus-Version": "1.0.0"}},
		{name: "POST without a length", method: "POST", path: "/files/", wantStatus: 400},
		{name: "POST with both lengths", method: "POST", path: "/files/", headers: []string{"Upload-Length", "5", "Upload-Defer-Length", "1"}, wantStatus: 400},
		{name: "POST with Upload-Defer-Length 2", method: "POST", path: "/files/", headers: []string{"Upload-Defer-Length", "2"}, wantStatus: 400},
		{name: "POST with a negative length", method: "POST", path: "/files/", headers: []string{"Upload-Length", "-1"}, wantStatus: 400},
		{name: "POST with a signed length", method: "POST", path: "/files/", headers: []string{"Upload-Length", "+5"}, wantStatus: 400},
		{name: "POST above Tus-Max-Size", method: "POST", path: "/files/", headers: []string{"Upload-Length", "1073741825"}, wantStatus: 413},
		{name: "POST with bad metadata base64", method: "POST", path: "/files/", headers: []string{"Upload-Length", "5", "Upload-Metadata", "filename !!!"}, wantStatus: 400},
		{name: "POST with a repeated metadata key", method: "POST", path: "/files/", headers: []string{"Upload-Length", "5", "Upload-Metadata", "a " + b64("x") + ",a " + b64("y")}, wantStatus: 400},
		{name: "POST with too much metadata", method: "POST", path: "/files/", headers: []string{"Upload-Length", "5", "Upload-Metadata", "a " + b64(strings.Repeat("x", 1024))}, wantStatus: 431},
		{name: "POST creates", method: "POST", path: "/files/", headers: []string{"Upload-Length", "5", "Upload-Metadata", "filename " + b64("a.txt") + ",empty"},
			wantStatus: 201, wantHeader: map[string]string{"Tus-Resumable": "1.0.0", "Upload-Expires": "Tue, 08 Dec 2026 05:00:00 GMT"}},
		{name: "POST with a body of another type", method: "POST", path: "/files/", body: "hello", headers: []string{"Upload-Length", "5", "Content-Type", "text/plain"}, wantStatus: 415},
		{name: "POST with upload", method: "POST", path: "/files/", body: "hello", headers: []string{"Upload-Length", "5", "Content-Type", OffsetContentType},
			wantStatus: 201, wantHeader: map[string]string{"Upload-Offset": "5"}},
		{name: "HEAD of a new upload", method: "HEAD", wantStatus: 200,
			wantHeader: map[string]string{"Upload-Offset": "0", "Upload-Length": "10", "Cache-Control": "no-store", "Tus-Resumable": "1.0.0",
				"Upload-Metadata": "filename YS5iaW4=,filetype YXBwbGljYXRpb24vcGRm", "Upload-Expires": "Tue, 08 Dec 2026 05:00:00 GMT"}},
		{name: "HEAD by another user", method: "HEAD", headers: []string{"X-User", "mallory"}, wantStatus: 403},
		{name: "HEAD of a forged id", method: "HEAD", path: "/files/bm90LWEtdG9rZW4", wantStatus: 404, wantHeader: map[string]string{"Tus-Resumable": "1.0.0"}},
		{name: "PATCH appends", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "0"},
			wantStatus: 204, wantHeader: map[string]string{"Upload-Offset": "5", "Upload-Expires": "Tue, 08 Dec 2026 05:00:00 GMT"}},
		{name: "PATCH with a wrong Content-Type", method: "PATCH", body: "hello", headers: []string{"Content-Type", "application/octet-stream", "Upload-Offset", "0"}, wantStatus: 415},
		{name: "PATCH without Upload-Offset", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType}, wantStatus: 400},
		{name: "PATCH at the wrong offset", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "3"},
			wantStatus: 409, wantHeader: map[string]string{"Upload-Offset": "0"}},
		{name: "PATCH beyond the length", method: "PATCH", body: "hello world", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "0"}, wantStatus: 413},
		{name: "PATCH changing the length", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "0", "Upload-Length", "11"}, wantStatus: 400},
		{name: "PATCH by another user", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "0", "X-User", "mallory"}, wantStatus: 403},
		{name: "PATCH through method override", method: "POST", body: "hello", headers: []string{"X-HTTP-Method-Override", "PATCH", "Content-Type", OffsetContentType, "Upload-Offset", "0"},
			wantStatus: 204, wantHeader: map[string]string{"Upload-Offset": "5"}},
		{name: "PATCH with a matching sha1", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "0", "Upload-Checksum", "sha1 " + digest(sha1.New(), "hello")},
			wantStatus: 204, wantHeader: map[string]string{"Upload-Offset": "5"}},
		{name: "PATCH with a matching md5", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "0", "Upload-Checksum", "md5 " + digest(md5.New(), "hello")},
			wantStatus: 204, wantHeader: map[string]string{"Upload-Offset": "5"}},
		{name: "PATCH with a matching crc32", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "0", "Upload-Checksum", "crc32 " + crc32Digest("hello")},
			wantStatus: 204, wantHeader: map[string]string{"Upload-Offset": "5"}},
		{name: "PATCH with a matching sha256", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "0", "Upload-Checksum", "sha256 " + digest(sha256.New(), "hello")},
			wantStatus: 204, wantHeader: map[string]string{"Upload-Offset": "5"}},
		{name: "PATCH with a mismatching sha1", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "0", "Upload-Checksum", "sha1 " + digest(sha1.New(), "hellO")},
			wantStatus: 460},
		{name: "PATCH with a mismatching crc32", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "0", "Upload-Checksum", "crc32 " + crc32Digest("hellO")},
			wantStatus: 460},
		{name: "PATCH with an unsupported checksum algorithm", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "0", "Upload-Checksum", "sha3 " + digest(sha256.New(), "hello")},
			wantStatus: 400},
		{name: "PATCH with a checksum without algorithm", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "0", "Upload-Checksum", digest(sha1.New(), "hello")},
			wantStatus: 400},
		{name: "PATCH with a checksum not in base64", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "0", "Upload-Checksum", "sha1 !!!!"},
			wantStatus: 400},
		{name: "PATCH with a checksum of the wrong size", method: "PATCH", body: "hello", headers: []string{"Content-Type", OffsetContentType, "Upload-Offset", "0", "Upload-Checksum", "sha1 " + digest(md5.New(), "hello")},
			wantStatus: 400},
		{name: "POST with upload and a matching checksum", method: "POST", path: "/files/", body: "hello", headers: []string{"Upload-Length", "5", "Content-Type", OffsetContentType, "Upload-Checksum", "sha1 " + digest(sha1.New(), "hello")},
			wantStatus: 201, wantHeader: map[string]string{"Upload-Offset": "5"}},
		{name: "POST with upload and a mismatching checksum", method: "POST", path: "/files/", body: "hello", headers: []string{"Upload-Length", "5", "Content-Type", OffsetContentType, "Upload-Checksum", "sha1 " + digest(sha1.New(), "hellO")},
			wantStatus: 460},
		{name: "DELETE terminates", method: "DELETE", wantStatus: 204},
		{name: "DELETE by another user", method: "DELETE", headers: []string{"X-User", "mallory"}, wantStatus: 403},
		{name: "GET is not tus", method: "GET", wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.MaxSize = 1 << 30 })
			target := tt.path
			if target == "" {
				target = e.create(t, 10)
			}
			w := do(e.h, tt.method, target, strings.NewReader(tt.body), tt.headers...)
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", w.Code, tt.wantStatus, w.Body)
			}
			for k, v := range tt.wantHeader {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tt.wantStatus == 201 || tt.method == "POST" && tt.wantStatus == 460 {
				loc := w.Header().Get("Location")
				if !strings.HasPrefix(loc, "/files/") || len(loc) < 60 {
					t.Errorf("Location = %q, want /files/<sealed id>", loc)
				}
			}
		})
	}
}

func digest(h hash.Hash, s string) string {
	h.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// crc32Digest is tus's crc32: IEEE CRC-32, 4 bytes big-endian, base64.
func crc32Digest(s string) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE([]byte(s))))
}

func TestExpired(t *testing.T) {
	e := newEnv(t, nil)
	loc := e.create(t, 10)
	e.clock.add(DefaultTTL)
	if w := do(e.h, "HEAD", loc, nil); w.Code != http.StatusGone {
		t.Errorf("HEAD after the TTL: %d, want 410", w.Code)
	}
	if w := patch(e.h, loc, 0, []byte("x")); w.Code != http.StatusGone {
		t.Errorf("PATCH after the TTL: %d, want 410", w.Code)
	}
}

// TestResumeAcrossInstances sends chunks smaller than S3's minimum part
// to two handler instances in turn: the tail carries the bytes between
// them, the object equals the source, and nothing temporary remains.
func TestResumeAcrossInstances(t *testing.T) {
	e := newEnv(t, nil)
	other := e.handler(t, nil)
	data := randomBytes(13*mib+12345, 1)
	loc := e.create(t, int64(len(data)))
	chunk := 3 * mib
	for i, off := 0, 0; off < len(data); i++ {
		h := e.h
		if i%2 == 1 {
			h = other
		}
		n := min(chunk, len(data)-off)
		w := patch(h, loc, int64(off), data[off:off+n])
		if w.Code != http.StatusNoContent {
			t.Fatalf("PATCH %d at %d: %d %s", i, off, w.Code, w.Body)
		}
		off += n
		if got := w.Header().Get("Upload-Offset"); got != strconv.Itoa(off) {
			t.Fatalf("PATCH %d: Upload-Offset %s, want %d", i, got, off)
		}
		head := do(other, "HEAD", loc, nil)
		if got := head.Header().Get("Upload-Offset"); got != strconv.Itoa(off) {
			t.Fatalf("HEAD after PATCH %d: Upload-Offset %s, want %d", i, got, off)
		}
	}
	assertStored(t, e, data)
	// HEAD of the finished upload still answers.
	if w := do(e.h, "HEAD", loc, nil); w.Code != 200 || w.Header().Get("Upload-Offset") != strconv.Itoa(len(data)) {
		t.Errorf("HEAD after completion: %d offset %s", w.Code, w.Header().Get("Upload-Offset"))
	}
}

func assertStored(t *testing.T, e *env, data []byte) {
	t.Helper()
	keys := e.s3.objectKeys("up/")
	if len(keys) != 1 {
		t.Fatalf("objects under up/: %v, want one", keys)
	}
	obj, _ := e.s3.object(keys[0])
	if sha256.Sum256(obj.data) != sha256.Sum256(data) {
		t.Errorf("stored %d bytes differ from the %d sent", len(obj.data), len(data))
	}
	if obj.sse != types.ServerSideEncryptionAwsKms || obj.meta[s3limits.MetaUploadedBy] != "alice" {
		t.Errorf("object sse %q metadata %v", obj.sse, obj.meta)
	}
	sum := sha256.Sum256(data)
	if e.h.cfg.Tags && (obj.tags["sha256"] != hex.EncodeToString(sum[:]) || obj.tags["size"] != strconv.Itoa(len(data))) {
		t.Errorf("object tags %v, want sha256 %x and size %d", obj.tags, sum, len(data))
	}
	if left := e.s3.objectKeys(DefaultTempPrefix); len(left) > 0 {
		t.Errorf("temporary objects left: %v", left)
	}
	if n := e.s3.openUploads(); n != 0 {
		t.Errorf("%d multipart uploads left open", n)
	}
}

// TestDeathAfterAPartKeepsTheHash: an instance that dies right after S3
// stored a part (before anything else is written) leaves an upload that
// another instance finishes with its sha256 tag: the hash state of the
// bytes up to that part was stored before the part.
func TestDeathAfterAPartKeepsTheHash(t *testing.T) {
	e := newEnv(t, nil)
	data := randomBytes(12*mib, 7)
	loc := e.create(t, int64(len(data)))
	if w := patch(e.h, loc, 0, data[:6*mib]); w.Code != http.StatusNoContent {
		t.Fatalf("first PATCH: %d %s", w.Code, w.Body)
	}
	e.s3.dieAfterPart = true
	patch(e.h, loc, 6*mib, data[6*mib:11*mib]) // the instance dies mid-request
	e.s3.mu.Lock()
	e.s3.dead = false
	e.s3.mu.Unlock()
	e.clock.add(DefaultLockTimeout)

	other := e.handler(t, nil)
	w := do(other, "HEAD", loc, nil)
	offset, _ := strconv.ParseInt(w.Header().Get("Upload-Offset"), 10, 64)
	if offset != 10*mib {
		t.Fatalf("offset after the death: %d, want %d (two parts)", offset, 10*mib)
	}
	if w := patch(other, loc, offset, data[offset:]); w.Code != http.StatusNoContent {
		t.Fatalf("last PATCH: %d %s", w.Code, w.Body)
	}
	assertStored(t, e, data)
}

// TestLargePatch sends everything in one PATCH: parts of PartSize, then
// a short last part.
func TestLargePatch(t *testing.T) {
	var events []Event
	e := newEnv(t, func(c *Config) { c.OnEvent = func(_ *http.Request, ev Event) { events = append(events, ev) } })
	data := randomBytes(11*mib+7, 2)
	loc := e.create(t, int64(len(data)))
	if w := patch(e.h, loc, 0, data); w.Code != http.StatusNoContent {
		t.Fatalf("PATCH: %d %s", w.Code, w.Body)
	}
	assertStored(t, e, data)
	if len(events) != 2 || events[1].Action != EventCompleted || events[1].Size != int64(len(data)) || !strings.HasPrefix(events[1].Key, "up/") {
		t.Errorf("events %+v, want created then completed with the size", events)
	}
}

// brokenBody yields n bytes of data, then fails like a dropped connection.
type brokenBody struct {
	r io.Reader
}

func (b *brokenBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, errors.New("connection reset by peer")
	}
	return n, err
}

// TestBrokenBodyKeepsWhatArrived: a PATCH that breaks off keeps the bytes
// received, as a part and a tail, and the client resumes from HEAD.
func TestBrokenBodyKeepsWhatArrived(t *testing.T) {
	e := newEnv(t, nil)
	data := randomBytes(8*mib, 3)
	loc := e.create(t, int64(len(data)))
	sent := 6*mib + 100
	r := httptest.NewRequest("PATCH", loc, &brokenBody{bytes.NewReader(data[:sent])})
	r.Header.Set("Tus-Resumable", Version)
	r.Header.Set("X-User", "alice")
	r.Header.Set("Content-Type", OffsetContentType)
	r.Header.Set("Upload-Offset", "0")
	r.ContentLength = int64(len(data))
	e.h.ServeHTTP(httptest.NewRecorder(), r)
	head := do(e.h, "HEAD", loc, nil)
	if got := head.Header().Get("Upload-Offset"); got != strconv.Itoa(sent) {
		t.Fatalf("offset after a broken PATCH %s, want %d", got, sent)
	}
	if w := patch(e.h, loc, int64(sent), data[sent:]); w.Code != http.StatusNoContent {
		t.Fatalf("resuming PATCH: %d %s", w.Code, w.Body)
	}
	assertStored(t, e, data)
}

// TestChunkedBodyBeyondLength: a body of unknown length longer than the
// upload is refused, and its last chunk is not stored.
func TestChunkedBodyBeyondLength(t *testing.T) {
	e := newEnv(t, nil)
	loc := e.create(t, 10)
	r := httptest.NewRequest("PATCH", loc, io.MultiReader(strings.NewReader("hello world!")))
	r.ContentLength = -1
	r.Header.Set("Tus-Resumable", Version)
	r.Header.Set("X-User", "alice")
	r.Header.Set("Content-Type", OffsetContentType)
	r.Header.Set("Upload-Offset", "0")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("PATCH: %d, want 413", w.Code)
	}
	if head := do(e.h, "HEAD", loc, nil); head.Header().Get("Upload-Offset") != "0" {
		t.Errorf("offset after the refused PATCH: %s, want 0", head.Header().Get("Upload-Offset"))
	}
	if keys := e.s3.objectKeys("up/"); len(keys) > 0 {
		t.Errorf("stored %v", keys)
	}
}

// TestHeadCompletesWhatAPatchLeftUncompleted: when completing fails after
// the last byte is stored, the client sees offset == length and sends
// nothing more; HEAD completes the upload.
func TestHeadCompletesWhatAPatchLeftUncompleted(t *testing.T) {
	e := newEnv(t, nil)
	data := randomBytes(7*mib, 8)
	loc := e.create(t, int64(len(data)))
	e.s3.failCompletes = 1
	if w := patch(e.h, loc, 0, data); w.Code != http.StatusInternalServerError {
		t.Fatalf("PATCH whose completion fails: %d, want 500", w.Code)
	}
	if n := e.s3.openUploads(); n != 1 {
		t.Fatalf("%d open uploads, want the uncompleted one", n)
	}
	head := do(e.h, "HEAD", loc, nil)
	if head.Code != 200 || head.Header().Get("Upload-Offset") != strconv.Itoa(len(data)) {
		t.Fatalf("HEAD: %d offset %s", head.Code, head.Header().Get("Upload-Offset"))
	}
	assertStored(t, e, data)
}

// TestPartsListedTwice: SeaweedFS lists a part that was uploaded twice
// (an SDK retry after a lost answer) twice; the offset counts it once.
func TestPartsListedTwice(t *testing.T) {
	e := newEnv(t, nil)
	e.s3.duplicateParts = true
	data := randomBytes(13*mib, 16)
	loc := e.create(t, int64(len(data)))
	if w := patch(e.h, loc, 0, data[:11*mib]); w.Code != http.StatusNoContent {
		t.Fatalf("PATCH: %d %s", w.Code, w.Body)
	}
	if got := do(e.h, "HEAD", loc, nil).Header().Get("Upload-Offset"); got != strconv.Itoa(11*mib) {
		t.Fatalf("Upload-Offset %s, want %d", got, 11*mib)
	}
	if w := patch(e.h, loc, 11*mib, data[11*mib:]); w.Code != http.StatusNoContent {
		t.Fatalf("last PATCH: %d %s", w.Code, w.Body)
	}
	assertStored(t, e, data)
}

// TestCompletionAnswerLost: S3 completed the upload but its answer was
// lost; the PATCH finds the object, cleans up and answers 204.
func TestCompletionAnswerLost(t *testing.T) {
	var events []string
	e := newEnv(t, func(c *Config) {
		c.MaxOpenUploads = 3
		c.OnEvent = func(_ *http.Request, ev Event) { events = append(events, ev.Action) }
	})
	data := randomBytes(7*mib, 15)
	loc := e.create(t, int64(len(data)))
	e.s3.loseCompletes = 1
	if w := patch(e.h, loc, 0, data); w.Code != http.StatusNoContent || w.Header().Get("Upload-Offset") != strconv.Itoa(len(data)) {
		t.Fatalf("PATCH whose completion answer is lost: %d offset %s (%s)", w.Code, w.Header().Get("Upload-Offset"), w.Body)
	}
	assertStored(t, e, data)
	if strings.Join(events, ",") != "created,completed" {
		t.Errorf("events %v, want created, completed", events)
	}
}

func TestDeferredLength(t *testing.T) {
	e := newEnv(t, nil)
	data := randomBytes(7*mib, 4)
	w := do(e.h, "POST", "/files", nil, "Upload-Defer-Length", "1")
	if w.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	loc := w.Header().Get("Location")
	if w := patch(e.h, loc, 0, data[:4*mib]); w.Code != http.StatusNoContent {
		t.Fatalf("first PATCH: %d %s", w.Code, w.Body)
	}
	head := do(e.h, "HEAD", loc, nil)
	if head.Header().Get("Upload-Defer-Length") != "1" || head.Header().Get("Upload-Length") != "" {
		t.Errorf("HEAD before the length is known: %v", head.Header())
	}
	if w := patch(e.h, loc, 4*mib, data[4*mib:], "Upload-Length", strconv.Itoa(len(data))); w.Code != http.StatusNoContent {
		t.Fatalf("last PATCH: %d %s", w.Code, w.Body)
	}
	assertStored(t, e, data)
}

func TestEmptyUpload(t *testing.T) {
	e := newEnv(t, nil)
	loc := e.create(t, 0)
	head := do(e.h, "HEAD", loc, nil)
	if head.Code != 200 || head.Header().Get("Upload-Offset") != "0" || head.Header().Get("Upload-Length") != "0" {
		t.Errorf("HEAD: %d %v", head.Code, head.Header())
	}
	assertStored(t, e, nil)
}

func TestTerminateRemovesEverything(t *testing.T) {
	var events []string
	e := newEnv(t, func(c *Config) {
		c.MaxOpenUploads = 5 // an open marker too
		c.OnEvent = func(_ *http.Request, ev Event) { events = append(events, ev.Action) }
	})
	loc := e.create(t, 20*mib)
	if w := patch(e.h, loc, 0, randomBytes(6*mib+3, 5)); w.Code != 204 {
		t.Fatalf("PATCH: %d", w.Code)
	}
	// A checksummed PATCH that died after staging a part left it behind.
	c, _ := e.h.sealer.open(path.Base(loc))
	if err := e.h.store(c).put(t.Context(), e.h.store(c).stageKey(6*mib+3), make([]byte, 5*mib), false, "staging a part"); err != nil {
		t.Fatal(err)
	}
	if n := len(e.s3.objectKeys(DefaultTempPrefix)); n != 4 {
		t.Fatalf("%d temporary objects before DELETE, want 4 (tail, SHA-256 state, staged part, open marker): %v", n, e.s3.objectKeys(DefaultTempPrefix))
	}
	if w := do(e.h, "DELETE", loc, nil); w.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	if left := e.s3.objectKeys(""); len(left) > 0 || e.s3.openUploads() > 0 {
		t.Errorf("left after DELETE: objects %v, %d uploads", left, e.s3.openUploads())
	}
	if w := do(e.h, "HEAD", loc, nil); w.Code != http.StatusNotFound {
		t.Errorf("HEAD after DELETE: %d, want 404", w.Code)
	}
	if w := do(e.h, "DELETE", loc, nil); w.Code != http.StatusNotFound {
		t.Errorf("second DELETE: %d, want 404", w.Code)
	}
	if strings.Join(events, ",") != "created,terminated" {
		t.Errorf("events %v, want created, terminated", events)
	}
}

// TestConcurrentPatch: while one PATCH is writing, a second one for the
// same upload on another instance gets 409, and the first completes.
func TestConcurrentPatch(t *testing.T) {
	e := newEnv(t, nil)
	other := e.handler(t, nil)
	data := randomBytes(2*mib, 6)
	loc := e.create(t, int64(len(data)))
	pr, pw := io.Pipe()
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		r := httptest.NewRequest("PATCH", loc, pr)
		r.Header.Set("Tus-Resumable", Version)
		r.Header.Set("X-User", "alice")
		r.Header.Set("Content-Type", OffsetContentType)
		r.Header.Set("Upload-Offset", "0")
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		done <- w
	}()
	pw.Write(data[:mib]) // returns once the handler reads: it holds the lock
	if w := patch(other, loc, 0, data); w.Code != http.StatusConflict {
		t.Errorf("concurrent PATCH: %d, want 409", w.Code)
	}
	pw.Write(data[mib:])
	pw.Close()
	if w := <-done; w.Code != http.StatusNoContent {
		t.Fatalf("first PATCH: %d %s", w.Code, w.Body)
	}
	assertStored(t, e, data)
}

// TestStaleLockIsTakenOver: a lock left by a request that died blocks
// others until LockTimeout, then is taken over.
func TestStaleLockIsTakenOver(t *testing.T) {
	e := newEnv(t, nil)
	loc := e.create(t, 10)
	c, _ := e.h.sealer.open(strings.TrimPrefix(loc, "/files/"))
	s := e.h.store(c)
	if _, err := s.acquire(t.Context(), DefaultLockTimeout, e.clock.now); err != nil {
		t.Fatal(err)
	}
	if w := patch(e.h, loc, 0, []byte("hello")); w.Code != http.StatusConflict {
		t.Errorf("PATCH while locked: %d, want 409", w.Code)
	}
	e.clock.add(DefaultLockTimeout)
	if w := patch(e.h, loc, 0, []byte("hello")); w.Code != http.StatusNoContent {
		t.Errorf("PATCH after the lock timed out: %d, want 204 (%s)", w.Code, w.Body)
	}
}

// TestLostLockStopsWrites: a slow holder whose lock was taken over finds
// out when renewing and writes nothing more.
func TestLostLockStopsWrites(t *testing.T) {
	e := newEnv(t, nil)
	loc := e.create(t, 10)
	c, _ := e.h.sealer.open(strings.TrimPrefix(loc, "/files/"))
	s := e.h.store(c)
	slow, err := s.acquire(t.Context(), DefaultLockTimeout, e.clock.now)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.add(DefaultLockTimeout)
	if _, err := s.acquire(t.Context(), DefaultLockTimeout, e.clock.now); err != nil {
		t.Fatalf("takeover: %v", err)
	}
	if err := slow.hold(t.Context()); !errors.Is(err, errLocked) {
		t.Errorf("slow holder's renewal: %v, want errLocked", err)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"short secret", func(c *Config) { c.Secrets = [][]byte{[]byte("short")} }},
		{"no secret", func(c *Config) { c.Secrets = nil }},
		{"small parts", func(c *Config) { c.PartSize = mib }},
		{"max size beyond parts", func(c *Config) { c.MaxSize = 5*mib*s3limits.MaxParts + 1 }},
		{"overlapping prefixes", func(c *Config) { c.Prefix = "t/"; c.TempPrefix = "t/tmp/" }},
		{"no bucket", func(c *Config) { c.Bucket = "" }},
		{"memory below one part", func(c *Config) { c.MemoryLimit = 4 * mib }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			cfg := e.h.cfg
			tt.mod(&cfg)
			if _, err := New(e.s3, cfg); err == nil {
				t.Error("New accepted the config")
			}
		})
	}
}

// partsOf lists the parts S3 holds of the one open upload.
func (e *env) partsOf(t *testing.T) map[int32]int {
	t.Helper()
	e.s3.mu.Lock()
	defer e.s3.mu.Unlock()
	if len(e.s3.uploads) != 1 {
		t.Fatalf("%d open uploads, want 1", len(e.s3.uploads))
	}
	out := map[int32]int{}
	for _, u := range e.s3.uploads {
		for n, b := range u.parts {
			out[n] = len(b)
		}
	}
	return out
}

// TestChecksumMismatchStoresNothing: a PATCH whose body spans several
// parts (staged while it arrives) and does not match its Upload-Checksum
// gets 460, and S3 holds exactly what it held before: the same parts,
// the same tail, no staged objects, the same offset on every instance.
// The same body with the right checksum is then appended.
func TestChecksumMismatchStoresNothing(t *testing.T) {
	for _, alg := range []string{"sha1", "crc32"} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, nil)
			other := e.handler(t, nil)
			data := randomBytes(20*mib+11, 9)
			loc := e.create(t, int64(len(data)))
			// 7 MiB + 5: one part and a 2 MiB tail.
			first := 7*mib + 5
			if w := patch(e.h, loc, 0, data[:first]); w.Code != http.StatusNoContent {
				t.Fatalf("first PATCH: %d %s", w.Code, w.Body)
			}
			partsBefore := e.partsOf(t)
			tempBefore := e.s3.objectKeys(DefaultTempPrefix)
			sum := func(b []byte) string {
				if alg == "crc32" {
					return "crc32 " + crc32Digest(string(b))
				}
				return "sha1 " + digest(sha1.New(), string(b))
			}
			chunk := data[first : first+12*mib+7]
			corrupt := bytes.Clone(chunk)
			corrupt[len(corrupt)-1] ^= 1

			w := patch(other, loc, int64(first), corrupt, "Upload-Checksum", sum(chunk))

			if w.Code != StatusChecksumMismatch {
				t.Fatalf("PATCH with a corrupted body: %d, want 460 (%s)", w.Code, w.Body)
			}
			if got := e.partsOf(t); !maps.Equal(got, partsBefore) {
				t.Errorf("parts after the mismatch %v, want %v", got, partsBefore)
			}
			if got := e.s3.objectKeys(DefaultTempPrefix); !slices.Equal(got, tempBefore) {
				t.Errorf("temporary objects after the mismatch %v, want %v", got, tempBefore)
			}
			for _, h := range []*Handler{e.h, other} {
				if got := do(h, "HEAD", loc, nil).Header().Get("Upload-Offset"); got != strconv.Itoa(first) {
					t.Errorf("Upload-Offset after the mismatch %s, want %d", got, first)
				}
			}
			if w := patch(e.h, loc, int64(first), chunk, "Upload-Checksum", sum(chunk)); w.Code != http.StatusNoContent || w.Header().Get("Upload-Offset") != strconv.Itoa(first+len(chunk)) {
				t.Fatalf("PATCH with the right body: %d offset %s (%s)", w.Code, w.Header().Get("Upload-Offset"), w.Body)
			}
			rest := data[first+len(chunk):]
			if w := patch(other, loc, int64(first+len(chunk)), rest, "Upload-Checksum", sum(rest)); w.Code != http.StatusNoContent {
				t.Fatalf("last PATCH: %d %s", w.Code, w.Body)
			}
			assertStored(t, e, data)
		})
	}
}

// TestChecksumPatchEndingTheUpload: a checksummed PATCH that carries the
// whole upload, a multiple of the part size, is staged, copied and
// completed.
func TestChecksumPatchEndingTheUpload(t *testing.T) {
	e := newEnv(t, nil)
	data := randomBytes(15*mib, 10)
	loc := e.create(t, int64(len(data)))
	if w := patch(e.h, loc, 0, data, "Upload-Checksum", "sha256 "+digest(sha256.New(), string(data))); w.Code != http.StatusNoContent {
		t.Fatalf("PATCH: %d %s", w.Code, w.Body)
	}
	assertStored(t, e, data)
	if n := strings.Count(strings.Join(e.s3.calls, ","), "UploadPartCopy"); n != 2 {
		t.Errorf("%d parts copied from staged objects, want 2 (the last stays in memory)", n)
	}
}

// TestChecksumWithoutPartCopy: on an S3 server that does not implement
// UploadPartCopy, staged parts are read back and uploaded.
func TestChecksumWithoutPartCopy(t *testing.T) {
	e := newEnv(t, nil)
	e.s3.noPartCopy = true
	data := randomBytes(12*mib+5, 14)
	loc := e.create(t, int64(len(data)))
	if w := patch(e.h, loc, 0, data, "Upload-Checksum", "sha1 "+digest(sha1.New(), string(data))); w.Code != http.StatusNoContent {
		t.Fatalf("PATCH: %d %s", w.Code, w.Body)
	}
	assertStored(t, e, data)
}

// TestChecksumBrokenBodyStoresNothing: a checksummed PATCH that breaks
// off cannot be verified, so none of what arrived counts.
func TestChecksumBrokenBodyStoresNothing(t *testing.T) {
	e := newEnv(t, nil)
	data := randomBytes(12*mib, 11)
	loc := e.create(t, int64(len(data)))
	r := httptest.NewRequest("PATCH", loc, &brokenBody{bytes.NewReader(data[:8*mib])})
	r.Header.Set("Tus-Resumable", Version)
	r.Header.Set("X-User", "alice")
	r.Header.Set("Content-Type", OffsetContentType)
	r.Header.Set("Upload-Offset", "0")
	r.Header.Set("Upload-Checksum", "sha1 "+digest(sha1.New(), string(data)))
	r.ContentLength = int64(len(data))
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != http.StatusBadRequest {
		t.Errorf("broken PATCH: %d, want 400", w.Code)
	}
	if got := do(e.h, "HEAD", loc, nil).Header().Get("Upload-Offset"); got != "0" {
		t.Errorf("Upload-Offset after a broken checksummed PATCH %s, want 0", got)
	}
	if left := e.s3.objectKeys(DefaultTempPrefix); len(left) > 0 {
		t.Errorf("temporary objects left: %v", left)
	}
}

// TestMemoryLimitBoundsPatches: with memory for one part, a second PATCH
// waits for the first one's buffer, gets 503 SERVER_BUSY with Retry-After
// when it is not freed in time, and goes through once it is.
func TestMemoryLimitBoundsPatches(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MemoryLimit = 5 * mib; c.MemoryWait = 50 * time.Millisecond })
	first, second := e.create(t, 10), e.create(t, 10)

	pr, pw := io.Pipe()
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- do(e.h, "PATCH", first, pr, "Content-Type", OffsetContentType, "Upload-Offset", "0") }()
	if _, err := pw.Write([]byte("hello")); err != nil { // the first PATCH holds the buffer now
		t.Fatal(err)
	}
	w := patch(e.h, second, 0, []byte("0123456789"))
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), codeServerBusy) || w.Header().Get("Retry-After") != "1" {
		t.Errorf("PATCH without memory: %d %q Retry-After %q, want 503 %s and Retry-After 1", w.Code, w.Body, w.Header().Get("Retry-After"), codeServerBusy)
	}
	pw.Close()
	if w := <-done; w.Code != http.StatusNoContent {
		t.Fatalf("first PATCH: %d %s", w.Code, w.Body)
	}
	if w := patch(e.h, second, 0, []byte("0123456789")); w.Code != http.StatusNoContent {
		t.Errorf("PATCH once the memory is free: %d %s", w.Code, w.Body)
	}
}

func TestPartBuffersReuse(t *testing.T) {
	p := newPartBuffers(5*mib, 20*mib, time.Second)
	a, _ := p.get(t.Context())
	p.put(a)
	runtime.GC()
	runtime.GC() // a sync.Pool would have dropped it by now
	b, _ := p.get(t.Context())
	if &a[0] != &b[0] {
		t.Error("a free buffer was not reused after two GCs")
	}
	p.put(b)
}

// TestDeferredLengthStopsAtMaxSize: with the length deferred, a body of
// unknown length (chunked) cannot take an upload past MaxSize: what
// arrived up to it is kept (none with a checksum) and the PATCH gets 413,
// on tus 1.0 and on the IETF draft's complete-at-end creation.
func TestDeferredLengthStopsAtMaxSize(t *testing.T) {
	tests := []struct {
		name     string
		headers  []string
		ietf     bool
		wantKept int64
	}{
		{name: "tus PATCH", wantKept: 6 * mib},
		{name: "tus PATCH with a checksum", headers: []string{"Upload-Checksum", "sha1 " + digest(sha1.New(), "x")}, wantKept: 0},
		{name: "IETF creation with Upload-Complete", ietf: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.MaxSize = 6 * mib })
			body := io.MultiReader(bytes.NewReader(randomBytes(12*mib, 9))) // no Len: sent chunked
			var r *http.Request
			if tt.ietf {
				r = httptest.NewRequest("POST", "/files/", body)
				r.Header.Set("Upload-Draft-Interop-Version", "6")
				r.Header.Set("Upload-Complete", "?1")
			} else {
				w := do(e.h, "POST", "/files/", nil, "Upload-Defer-Length", "1")
				if w.Code != http.StatusCreated {
					t.Fatalf("POST: %d %s", w.Code, w.Body)
				}
				r = httptest.NewRequest("PATCH", w.Header().Get("Location"), body)
				r.Header.Set("Tus-Resumable", Version)
				r.Header.Set("Content-Type", OffsetContentType)
				r.Header.Set("Upload-Offset", "0")
			}
			r.ContentLength = -1
			r.Header.Set("X-User", "alice")
			for i := 0; i+1 < len(tt.headers); i += 2 {
				r.Header.Set(tt.headers[i], tt.headers[i+1])
			}
			w := &infoRecorder{ResponseRecorder: httptest.NewRecorder()} // final status, after a 104
			e.h.ServeHTTP(w, r)
			if w.Code != http.StatusRequestEntityTooLarge {
				t.Errorf("%s: %d %s, want 413", r.Method, w.Code, w.Body)
			}
			if keys := e.s3.objectKeys("up/"); len(keys) > 0 {
				t.Errorf("completed objects %v, want none", keys)
			}
			if !tt.ietf {
				head := do(e.h, "HEAD", r.URL.Path, nil)
				if got := head.Header().Get("Upload-Offset"); got != strconv.FormatInt(tt.wantKept, 10) {
					t.Errorf("offset after the refused PATCH: %s, want %d", got, tt.wantKept)
				}
			}
			var kept int
			for _, n := range e.partsOf(t) {
				kept += n
			}
			if kept > 6*mib {
				t.Errorf("bytes in parts: %d, more than MaxSize", kept)
			}
		})
	}
}

// TestTemporaryObjectsEncrypted: the objects under the temporary prefix
// (the tail with the user's bytes, the lock, the open marker, the
// SHA-256 state, a deferred length) are written with the upload's
// encryption, as the upload itself.
func TestTemporaryObjectsEncrypted(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxOpenUploads = 5 })
	w := do(e.h, "POST", "/files/", nil, "Upload-Defer-Length", "1")
	if w.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	loc := w.Header().Get("Location")
	data := randomBytes(6*mib, 11)
	if w := patch(e.h, loc, 0, data, "Upload-Length", strconv.Itoa(7*mib)); w.Code != http.StatusNoContent {
		t.Fatalf("PATCH: %d %s", w.Code, w.Body)
	}
	keys := e.s3.objectKeys(DefaultTempPrefix)
	if len(keys) < 3 {
		t.Fatalf("temporary objects %v, want a tail, a length, a SHA-256 state and an open marker", keys)
	}
	for _, k := range keys {
		if o, _ := e.s3.object(k); o.sse != types.ServerSideEncryptionAwsKms {
			t.Errorf("%s stored with SSE %q, want aws:kms", k, o.sse)
		}
	}
}

// TestMetadataMustFitTheURL: the upload URL carries the metadata sealed,
// and "<" in it is not JSON-escaped (six bytes each, which made a URL too
// long to be accepted back: every later request got 404).
func TestMetadataMustFitTheURL(t *testing.T) {
	tests := []struct {
		name string
		key  string
		want int
	}{
		{"HTML characters", strings.Repeat("<", 1000), http.StatusCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			w := do(e.h, "POST", "/files/", nil, "Upload-Length", "10", "Upload-Metadata", tt.key+" dmFsdWU=")
			if w.Code != tt.want {
				t.Fatalf("POST: %d %s, want %d", w.Code, w.Body, tt.want)
			}
			if w.Code != http.StatusCreated {
				if n := e.s3.openUploads(); n != 0 {
					t.Errorf("%d multipart uploads created", n)
				}
				return
			}
			if head := do(e.h, "HEAD", w.Header().Get("Location"), nil); head.Code != http.StatusOK {
				t.Errorf("HEAD of the new upload (URL of %d bytes): %d", len(w.Header().Get("Location")), head.Code)
			}
		})
	}
}
