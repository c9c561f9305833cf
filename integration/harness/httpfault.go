package harness

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// S3 operations as the HTTP fault proxy tells them apart (path-style
// requests only, as the gateway sends them with path_style).
const (
	OpPutObject               = "PutObject"
	OpCreateMultipartUpload   = "CreateMultipartUpload"
	OpUploadPart              = "UploadPart"
	OpCompleteMultipartUpload = "CompleteMultipartUpload"
	OpAbortMultipartUpload    = "AbortMultipartUpload"
	OpPutObjectTagging        = "PutObjectTagging"
	OpDeleteObject            = "DeleteObject"
	OpOther                   = "Other"
)

// S3Operation names the S3 operation of a request: UploadPart is a PUT with
// partNumber and uploadId, CompleteMultipartUpload a POST with uploadId, and
// so on. Requests it does not know are OpOther.
func S3Operation(r *http.Request) string {
	q := r.URL.Query()
	has := func(k string) bool { _, ok := q[k]; return ok }
	switch r.Method {
	case http.MethodPut:
		switch {
		case has("partNumber") && has("uploadId"):
			return OpUploadPart
		case has("tagging"):
			return OpPutObjectTagging
		default:
			return OpPutObject
		}
	case http.MethodPost:
		switch {
		case has("uploads"):
			return OpCreateMultipartUpload
		case has("uploadId"):
			return OpCompleteMultipartUpload
		}
	case http.MethodDelete:
		if has("uploadId") {
			return OpAbortMultipartUpload
		}
		return OpDeleteObject
	}
	return OpOther
}

// Fault is one misbehaviour of the HTTP fault proxy. A request is eligible
// when it matches Op; the first Skip eligible requests pass untouched, the
// next Limit (all when 0) are hit, each with probability Fraction (always
// when 0 or 1). A hit request waits Latency, then gets Status with an
// S3-style XML error body (its body is read first, as S3 would), or is
// forwarded when Status is 0. With Lost set, a hit request is forwarded and
// S3 acts on it, but its answer is replaced by Status: the answer was lost
// on the way back. With Corrupt set, a hit request is forwarded with one
// byte of its body changed (the length stays): a body tampered with in
// transit.
type Fault struct {
	Op       string // an Op* constant; "" matches every request
	Skip     int
	Limit    int
	Fraction float64
	Status   int
	Latency  time.Duration
	Lost     bool
	Corrupt  bool

	seen, hits int
}

// FailNth answers the nth (from 1) request of op with status.
func FailNth(op string, n, status int) Fault {
	return Fault{Op: op, Skip: n - 1, Limit: 1, Status: status}
}

// Record is what the proxy did with one request.
type Record struct {
	Op       string
	Method   string
	Path     string
	Status   int  // the status the gateway got (0 when the exchange failed)
	Injected bool // the status came from a fault, not from S3
	Tampered bool // S3 got the request with one byte of its body changed
	// PayloadHash is the request's X-Amz-Content-Sha256: the body's
	// SHA-256 in hex when the payload is signed, else e.g. UNSIGNED-PAYLOAD.
	PayloadHash string
}

// HTTPFaultProxy is a loopback HTTP reverse proxy in front of an S3 server
// that answers chosen requests with errors or delays them, as told at run
// time. The Host header is forwarded unchanged, so SigV4 signatures made
// for the proxy's address verify at the server (SeaweedFS checks them
// against the Host it receives when no X-Forwarded-Host is set).
type HTTPFaultProxy struct {
	// Addr is the proxy's "127.0.0.1:PORT"; URL is "http://" + Addr.
	Addr, URL string

	srv *http.Server
	rp  *httputil.ReverseProxy
	tr  *http.Transport

	mu        sync.Mutex
	faults    []*Fault
	rng       *rand.Rand
	records   []Record
	metaLimit int // see EnforceMetadataLimit
}

// NewHTTPFaultProxy starts a proxy to target, e.g. "http://127.0.0.1:8333"
// or "127.0.0.1:8333".
func NewHTTPFaultProxy(target string) (*HTTPFaultProxy, error) {
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("fault proxy target: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConnsPerHost = 64
	p := &HTTPFaultProxy{
		Addr: ln.Addr().String(),
		tr:   tr,
		rng:  rand.New(rand.NewPCG(1, 2)),
	}
	p.URL = "http://" + p.Addr
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // the signed host
		},
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil { // else nobody is there to answer
				w.WriteHeader(http.StatusBadGateway)
			}
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{Handler: p, ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// SetSeed makes the choices of Fraction faults reproducible.
func (p *HTTPFaultProxy) SetSeed(seed uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// Inject adds a fault; the first fault that hits a request applies.
func (p *HTTPFaultProxy) Inject(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f.seen, f.hits = 0, 0
	p.faults = append(p.faults, &f)
}

// Clear removes every fault: requests pass untouched again.
func (p *HTTPFaultProxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
}

// Records returns what happened to the requests so far, in order of their
// answers.
func (p *HTTPFaultProxy) Records() []Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Record(nil), p.records...)
}

// Count returns how many requests of op (every request when "") got an
// answer with status (any status when 0).
func (p *HTTPFaultProxy) Count(op string, status int) int {
	n := 0
	for _, r := range p.Records() {
		if (op == "" || r.Op == op) && (status == 0 || r.Status == status) {
			n++
		}
	}
	return n
}

// Close stops the proxy and closes its connections.
func (p *HTTPFaultProxy) Close() {
	_ = p.srv.Close()
	p.tr.CloseIdleConnections()
}

// pick returns the fault that hits r, if any.
func (p *HTTPFaultProxy) pick(op string) *Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.faults {
		if f.Op != "" && f.Op != op {
			continue
		}
		f.seen++
		if f.seen <= f.Skip || (f.Limit > 0 && f.hits >= f.Limit) {
			continue
		}
		if f.Fraction > 0 && f.Fraction < 1 && p.rng.Float64() >= f.Fraction {
			continue
		}
		f.hits++
		c := *f
		return &c
	}
	return nil
}

// record notes what happened to r; tampered says S3 got it with one byte
// of its body changed.
func (p *HTTPFaultProxy) record(r *http.Request, op string, status int, injected, tampered bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.records = append(p.records, Record{Op: op, Method: r.Method, Path: r.URL.Path, Status: status, Injected: injected,
		Tampered: tampered, PayloadHash: r.Header.Get("X-Amz-Content-Sha256")})
}

// EnforceMetadataLimit makes the proxy refuse, as AWS S3 does (SeaweedFS
// does not), a PutObject or CreateMultipartUpload whose user metadata
// (x-amz-meta-* names without the prefix, and values) exceeds limit bytes:
// 400 MetadataTooLarge. 0 turns it off.
func (p *HTTPFaultProxy) EnforceMetadataLimit(limit int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.metaLimit = limit
}

// metadataTooLarge answers a request over the metadata limit, if any.
func (p *HTTPFaultProxy) metadataTooLarge(w http.ResponseWriter, r *http.Request, op string) bool {
	p.mu.Lock()
	limit := p.metaLimit
	p.mu.Unlock()
	if limit == 0 || (op != OpPutObject && op != OpCreateMultipartUpload) {
		return false
	}
	n := 0
	for k, vs := range r.Header {
		if name, ok := strings.CutPrefix(strings.ToLower(k), "x-amz-meta-"); ok {
			n += len(name) + len(strings.Join(vs, ","))
		}
	}
	if n <= limit {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<30))
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>MetadataTooLarge</Code><Message>Your metadata headers exceed the maximum allowed metadata size.</Message><Size>%d</Size><MaxSizeAllowed>%d</MaxSizeAllowed><RequestId>FAULTPROXY</RequestId></Error>`, n, limit)
	p.record(r, op, http.StatusBadRequest, true, false)
	return true
}

func (p *HTTPFaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := S3Operation(r)
	if p.metadataTooLarge(w, r, op) {
		return
	}
	f := p.pick(op)
	if f != nil && f.Latency > 0 {
		// Take the whole body first, as a slow S3 would, so that net/http
		// notices when the gateway gives up and hangs up (it watches the
		// connection only once the body is read).
		body, err := io.ReadAll(r.Body)
		if err != nil {
			p.record(r, op, 0, true, false)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done(): // the gateway gave up: S3 never sees it
			t.Stop()
			p.record(r, op, 0, true, false)
			return
		}
	}
	if f != nil && f.Status != 0 && f.Lost {
		dw := &discardWriter{h: http.Header{}}
		p.rp.ServeHTTP(dw, r)
		writeS3Error(w, r, f.Status)
		p.record(r, op, f.Status, true, false)
		return
	}
	if f != nil && f.Status != 0 {
		// Read the body as S3 does before it fails, so that the client
		// gets the answer rather than a reset connection.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<30))
		writeS3Error(w, r, f.Status)
		p.record(r, op, f.Status, true, false)
		return
	}
	tampered := f != nil && f.Corrupt
	if tampered {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			p.record(r, op, 0, true, false)
			return
		}
		if len(body) > 0 {
			body[len(body)/2] ^= 0x01
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	sw := &statusWriter{ResponseWriter: w}
	p.rp.ServeHTTP(sw, r)
	p.record(r, op, sw.status, false, tampered)
}

// writeS3Error answers like S3 does when it fails.
func writeS3Error(w http.ResponseWriter, r *http.Request, status int) {
	code, msg := "InternalError", "We encountered an internal error. Please try again."
	switch status {
	case http.StatusServiceUnavailable:
		code, msg = "ServiceUnavailable", "Please reduce your request rate."
	case http.StatusBadGateway:
		code, msg = "BadGateway", "Bad gateway."
	case http.StatusGatewayTimeout:
		code, msg = "GatewayTimeout", "Gateway timeout."
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("X-Amz-Request-Id", "FAULTPROXY")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource><RequestId>FAULTPROXY</RequestId></Error>`,
		code, msg, xmlEscape(r.URL.Path))
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// statusWriter remembers the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// discardWriter swallows an answer.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
