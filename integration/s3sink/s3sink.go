// Package s3sink is a minimal S3 server for benchmarks, NOT an S3
// implementation: it answers the calls of a streaming upload (PutObject, the
// multipart calls, PutObjectTagging, HeadObject, DeleteObject) for any bucket
// and key, checks no signature or permission, stores no bytes, and keeps
// only the size and checksum of each object in memory.
//
// What it does check, as S3 does, is every body's integrity: the SHA-256 of a
// signed payload (X-Amz-Content-Sha256), the x-amz-checksum-* value in a
// header or an aws-chunked trailer, and on CompleteMultipartUpload with
// ChecksumType FULL_OBJECT the whole object's CRC, combined from the parts'.
// A mismatch gets 400 BadDigest. So an upload path that skips a hash S3
// would make it pay for is caught, and the sink's own cost is one pass of
// each hash over the bytes (and none for UNSIGNED-PAYLOAD with a CRC).
package s3sink

import (
	"bufio"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-upload-gateway/upload-gateway/internal/crccombine"
)

// Server is the sink. The zero value is not usable; call New.
type Server struct {
	mu      sync.Mutex
	uploads map[string]*upload
	objects map[string]object
	nextID  atomic.Int64

	// Bytes is the number of body bytes received and checked.
	Bytes atomic.Int64

	// Rate, when positive, caps how many body bytes per second all
	// requests together are read at, to stand in for a slower S3 (part
	// buffers then fill up as they do in front of a real server). Set it
	// before serving.
	Rate int64

	paceMu   sync.Mutex
	paceNext time.Time // when the bytes read so far are due at Rate
}

// pacer is a writer that holds the body reader back to the sink's Rate.
type pacer struct{ s *Server }

func (p pacer) Write(b []byte) (int, error) {
	s := p.s
	s.paceMu.Lock()
	now := time.Now()
	if s.paceNext.Before(now) {
		s.paceNext = now
	}
	s.paceNext = s.paceNext.Add(time.Duration(int64(len(b)) * int64(time.Second) / s.Rate))
	wait := s.paceNext.Sub(now)
	s.paceMu.Unlock()
	time.Sleep(wait)
	return len(b), nil
}

type upload struct {
	alg      string // checksum algorithm named at create, upper case; "" none
	fullType bool   // ChecksumType FULL_OBJECT
	parts    map[int]part
}

type part struct {
	size int64
	alg  string
	sum  []byte // raw checksum value
}

type object struct {
	size     int64
	alg      string
	checksum string // base64, as S3 shows it
	typ      string // FULL_OBJECT or COMPOSITE
}

// New returns an empty sink.
func New() *Server {
	return &Server{uploads: map[string]*upload{}, objects: map[string]object{}}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key := r.URL.Path
	switch {
	case r.Method == http.MethodPut && q.Has("tagging"):
		_, _ = io.Copy(io.Discard, r.Body)
	case r.Method == http.MethodPut && q.Has("partNumber"):
		s.uploadPart(w, r, key, q.Get("uploadId"), q.Get("partNumber"))
	case r.Method == http.MethodPut:
		s.putObject(w, r, key)
	case r.Method == http.MethodPost && q.Has("uploads"):
		s.create(w, r, key)
	case r.Method == http.MethodPost && q.Has("uploadId"):
		s.complete(w, r, key, q.Get("uploadId"))
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		s.mu.Lock()
		delete(s.uploads, q.Get("uploadId"))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete:
		s.mu.Lock()
		delete(s.objects, key)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodHead:
		s.mu.Lock()
		o, ok := s.objects[key]
		s.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(o.size, 10))
		if o.alg != "" {
			w.Header().Set("X-Amz-Checksum-"+o.alg, o.checksum)
			w.Header().Set("X-Amz-Checksum-Type", o.typ)
		}
	default:
		fail(w, http.StatusNotImplemented, "NotImplemented", r.Method+" "+r.URL.RawQuery)
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, key string) {
	_, _ = io.Copy(io.Discard, r.Body)
	id := strconv.FormatInt(s.nextID.Add(1), 10)
	up := &upload{
		alg:      strings.ToUpper(r.Header.Get("X-Amz-Checksum-Algorithm")),
		fullType: strings.EqualFold(r.Header.Get("X-Amz-Checksum-Type"), "FULL_OBJECT"),
		parts:    map[int]part{},
	}
	if up.fullType && !isCRC(up.alg) {
		fail(w, http.StatusBadRequest, "InvalidRequest", "FULL_OBJECT needs a CRC algorithm")
		return
	}
	s.mu.Lock()
	s.uploads[id] = up
	s.mu.Unlock()
	if up.alg != "" {
		w.Header().Set("X-Amz-Checksum-Algorithm", up.alg)
	}
	fmt.Fprintf(w, `<InitiateMultipartUploadResult><Key>%s</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>`, xmlEscape(key), id)
}

func (s *Server) uploadPart(w http.ResponseWriter, r *http.Request, key, id, num string) {
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 10000 {
		fail(w, http.StatusBadRequest, "InvalidArgument", "partNumber")
		return
	}
	s.mu.Lock()
	up := s.uploads[id]
	s.mu.Unlock()
	if up == nil {
		fail(w, http.StatusNotFound, "NoSuchUpload", id)
		return
	}
	size, alg, sum, ok := s.readBody(w, r)
	if !ok {
		return
	}
	if up.alg != "" && alg != up.alg {
		fail(w, http.StatusBadRequest, "InvalidRequest", "part checksum "+alg+", upload uses "+up.alg)
		return
	}
	s.mu.Lock()
	up.parts[n] = part{size: size, alg: alg, sum: sum}
	s.mu.Unlock()
	w.Header().Set("ETag", fmt.Sprintf(`"%s-%d"`, id, n))
	if alg != "" {
		w.Header().Set("X-Amz-Checksum-"+alg, base64.StdEncoding.EncodeToString(sum))
	}
}

func (s *Server) putObject(w http.ResponseWriter, r *http.Request, key string) {
	size, alg, sum, ok := s.readBody(w, r)
	if !ok {
		return
	}
	o := object{size: size, alg: alg, typ: "FULL_OBJECT"}
	if alg != "" {
		o.checksum = base64.StdEncoding.EncodeToString(sum)
		w.Header().Set("X-Amz-Checksum-"+alg, o.checksum)
	}
	s.mu.Lock()
	s.objects[key] = o
	s.mu.Unlock()
	w.Header().Set("ETag", `"sink"`)
}

type completeRequest struct {
	Parts []struct {
		PartNumber int
		ETag       string
	} `xml:"Part"`
}

func (s *Server) complete(w http.ResponseWriter, r *http.Request, key, id string) {
	var req completeRequest
	if err := xml.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, "MalformedXML", err.Error())
		return
	}
	s.mu.Lock()
	up := s.uploads[id]
	delete(s.uploads, id)
	s.mu.Unlock()
	if up == nil {
		fail(w, http.StatusNotFound, "NoSuchUpload", id)
		return
	}
	o := object{alg: up.alg}
	var crc uint64
	var composite []byte
	for i, p := range req.Parts {
		got, ok := up.parts[p.PartNumber]
		if !ok || (i > 0 && p.PartNumber <= req.Parts[i-1].PartNumber) {
			fail(w, http.StatusBadRequest, "InvalidPart", strconv.Itoa(p.PartNumber))
			return
		}
		o.size += got.size
		switch {
		case up.fullType:
			poly, width := crcParams(up.alg)
			crc = crccombine.Combine(poly, width, crc, sumValue(got.sum), got.size)
		case up.alg != "":
			composite = append(composite, got.sum...)
		}
	}
	switch {
	case up.fullType:
		_, width := crcParams(up.alg)
		o.checksum, o.typ = encodeCRC(crc, width), "FULL_OBJECT"
		if want := r.Header.Get("X-Amz-Checksum-" + up.alg); want != "" && want != o.checksum {
			fail(w, http.StatusBadRequest, "BadDigest", "full-object checksum "+want+", computed "+o.checksum)
			return
		}
	case up.alg != "":
		h := newHash(up.alg)
		h.Write(composite)
		o.checksum = fmt.Sprintf("%s-%d", base64.StdEncoding.EncodeToString(h.Sum(nil)), len(req.Parts))
		o.typ = "COMPOSITE"
	}
	s.mu.Lock()
	s.objects[key] = o
	s.mu.Unlock()
	var sum string
	if o.alg != "" {
		sum = fmt.Sprintf("<Checksum%s>%s</Checksum%s><ChecksumType>%s</ChecksumType>", o.alg, o.checksum, o.alg, o.typ)
	}
	fmt.Fprintf(w, `<CompleteMultipartUploadResult><Key>%s</Key><ETag>"%s-%d"</ETag>%s</CompleteMultipartUploadResult>`,
		xmlEscape(key), id, len(req.Parts), sum)
}

// readBody reads and checks a PutObject or UploadPart body. It returns its
// size and its checksum (algorithm and raw value; "" when it carried none).
// On a failed check it has written the error response.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (size int64, alg string, sum []byte, ok bool) {
	payload := r.Header.Get("X-Amz-Content-Sha256")
	var want string // base64 checksum from the header
	for name, v := range r.Header {
		if a, found := strings.CutPrefix(strings.ToUpper(name), "X-AMZ-CHECKSUM-"); found && a != "ALGORITHM" && a != "TYPE" && a != "MODE" {
			alg, want = a, v[0]
		}
	}
	chunked := strings.HasPrefix(payload, "STREAMING-")
	if chunked {
		if t := r.Header.Get("X-Amz-Trailer"); t != "" {
			alg = strings.ToUpper(strings.TrimPrefix(strings.ToLower(t), "x-amz-checksum-"))
		}
	}
	var ws []io.Writer
	var ck, sh hash.Hash
	if alg != "" {
		if ck = newHash(alg); ck == nil {
			fail(w, http.StatusBadRequest, "InvalidRequest", "checksum algorithm "+alg)
			return 0, "", nil, false
		}
		ws = append(ws, ck)
	}
	signed := len(payload) == 64
	if signed && alg != "SHA256" {
		sh = sha256.New()
		ws = append(ws, sh)
	}
	counter := &countWriter{}
	ws = append(ws, counter)
	if s.Rate > 0 {
		ws = append(ws, pacer{s})
	}
	dst := io.MultiWriter(ws...)
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	var err error
	if chunked {
		var trailer map[string]string
		trailer, err = readChunked(r.Body, dst, *buf)
		if err == nil && want == "" && alg != "" {
			want = trailer["x-amz-checksum-"+strings.ToLower(alg)]
		}
	} else {
		_, err = io.CopyBuffer(dst, r.Body, *buf)
	}
	if err != nil {
		fail(w, http.StatusBadRequest, "IncompleteBody", err.Error())
		return 0, "", nil, false
	}
	s.Bytes.Add(counter.n)
	if ck != nil {
		sum = ck.Sum(nil)
		if got := base64.StdEncoding.EncodeToString(sum); got != want {
			fail(w, http.StatusBadRequest, "BadDigest", fmt.Sprintf("x-amz-checksum-%s %q, computed %q", strings.ToLower(alg), want, got))
			return 0, "", nil, false
		}
	}
	if signed {
		var got string
		if sh != nil {
			got = hex.EncodeToString(sh.Sum(nil))
		} else {
			got = hex.EncodeToString(sum)
		}
		if got != payload {
			fail(w, http.StatusBadRequest, "XAmzContentSHA256Mismatch", "payload "+payload+", computed "+got)
			return 0, "", nil, false
		}
	}
	return counter.n, alg, sum, true
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// readChunked decodes an aws-chunked body (chunk signatures, if any, are
// ignored) into dst and returns its trailing headers.
func readChunked(body io.Reader, dst io.Writer, buf []byte) (map[string]string, error) {
	br := bufio.NewReaderSize(body, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("chunk header: %w", err)
		}
		sizeHex, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ";")
		n, err := strconv.ParseInt(sizeHex, 16, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("chunk size %q", sizeHex)
		}
		if n == 0 {
			break
		}
		if _, err := io.CopyBuffer(dst, io.LimitReader(br, n), buf); err != nil {
			return nil, err
		}
		if crlf, err := br.ReadString('\n'); err != nil || strings.TrimRight(crlf, "\r\n") != "" {
			return nil, errors.New("chunk not followed by CRLF")
		}
	}
	trailer := map[string]string{}
	for {
		line, err := br.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return trailer, nil
		}
		if name, v, ok := strings.Cut(line, ":"); ok {
			trailer[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(v)
		}
		if err != nil {
			return trailer, nil
		}
	}
}

func newHash(alg string) hash.Hash {
	switch alg {
	case "CRC32":
		return crc32.NewIEEE()
	case "CRC32C":
		return crc32.New(crc32.MakeTable(crc32.Castagnoli))
	case "CRC64NVME":
		return crc64.New(crc64.MakeTable(crccombine.CRC64NVME))
	case "SHA1":
		return sha1.New()
	case "SHA256":
		return sha256.New()
	}
	return nil
}

func isCRC(alg string) bool { _, w := crcParams(alg); return w > 0 }

func crcParams(alg string) (poly uint64, width uint) {
	switch alg {
	case "CRC32":
		return crccombine.CRC32, 32
	case "CRC32C":
		return crccombine.CRC32C, 32
	case "CRC64NVME":
		return crccombine.CRC64NVME, 64
	}
	return 0, 0
}

func sumValue(sum []byte) uint64 {
	if len(sum) == 4 {
		return uint64(binary.BigEndian.Uint32(sum))
	}
	return binary.BigEndian.Uint64(sum)
}

func encodeCRC(v uint64, width uint) string {
	if width == 32 {
		return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, uint32(v)))
	}
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, v))
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<Error><Code>%s</Code><Message>%s</Message></Error>`, code, xmlEscape(msg))
}
