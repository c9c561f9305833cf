//go:build integration

package integration_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// Hostile clients against the streaming handler (issue 10, items 2 and 6):
// slow clients that announce huge bodies, slowloris, many slow clients at
// once, one client opening many uploads, and forms of many tiny files. In
// every case legitimate uploads still go through, the hostile ones get a JSON
// error, and nothing is left in S3.

// trickler is a client on its own TLS connection that sends a request head,
// an optional burst of body bytes, and then one byte every interval until the
// gateway answers or the test stops it.
type trickler struct {
	conn   *tls.Conn
	start  time.Time
	stop   chan struct{}
	done   chan struct{}
	status int
	code   string
	took   time.Duration
	err    error
}

// startTrickler opens a connection and starts sending. head is the request
// line and headers (without the blank line); burst is sent at once.
func startTrickler(t *testing.T, gw *harness.Gateway, head string, burst []byte, interval time.Duration) *trickler {
	t.Helper()
	tlsCfg := gw.Client.Transport.(*http.Transport).TLSClientConfig
	conn, err := tls.Dial("tcp", strings.TrimPrefix(gw.URL, "https://"), tlsCfg)
	if err != nil {
		t.Fatalf("dialing the gateway: %v", err)
	}
	tr := &trickler{conn: conn, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	_ = conn.SetDeadline(time.Now().Add(90 * time.Second)) // no test waits longer
	go func() {
		if _, err := io.WriteString(conn, head+"\r\n\r\n"); err != nil {
			return
		}
		if _, err := conn.Write(burst); err != nil {
			return
		}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-tr.stop:
				return
			case <-tr.done:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}
	}()
	go func() {
		defer close(tr.done)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		tr.took = time.Since(tr.start)
		if err != nil {
			tr.err = err
			return
		}
		defer resp.Body.Close()
		tr.status = resp.StatusCode
		var r apiResponse
		body, _ := io.ReadAll(resp.Body)
		if json.Unmarshal(body, &r) == nil {
			tr.code = r.Error.Code
		}
	}()
	t.Cleanup(tr.close)
	return tr
}

// wait waits for the gateway's answer, at most d.
func (tr *trickler) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-tr.done:
	case <-time.After(d):
		t.Fatalf("no answer after %v", d)
	}
}

func (tr *trickler) close() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	tr.conn.Close()
}

// answered reports whether the gateway has answered.
func (tr *trickler) answered() bool {
	select {
	case <-tr.done:
		return true
	default:
		return false
	}
}

// rawHead is a PUT of an opaque body with the given declared length.
func rawHead(path string, length int64) string {
	return fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: %d", path, length)
}

// formHead is a POST of a form with the given declared length, and the
// start of its one file part.
func formHead(path string, length int64) (string, []byte) {
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d", path, secBoundary, length)
	part := fmt.Sprintf("--%s\r\nContent-Disposition: form-data; name=\"f\"; filename=\"slow.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n", secBoundary)
	return head, []byte(part)
}

// putTimed uploads n bytes with a normal client and reports how long it took.
func putTimed(t *testing.T, gw *harness.Gateway, path string, n int64) (*http.Response, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, gw.URL+path, io.LimitReader(harness.NewRandomReader(uint64(n), n), n))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	start := time.Now()
	resp, err := gw.Client.Do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", path, err)
	}
	return resp, time.Since(start)
}

// Two clients announce 5 TiB bodies and then trickle; two more do the same
// with forms. Before the fix, each raw one reserved a 525 MiB part of the
// 1 GiB memory_limit before sending a byte, and everyone else queued behind
// them. Now the raw ones are refused at once (5 TiB cannot fit in 10,000
// parts of memory_limit/(concurrency+1)), the forms hold no more than the
// bytes they sent, and a third client's 1 MiB upload goes through in seconds.
func TestAbuseHugeDeclaredBodiesDoNotFreezeUploads(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{
		"memory_limit 1GiB", "read_timeout 3s", "min_rate 16KiB",
	}}.block())

	var slow []*trickler
	for i := range 2 {
		slow = append(slow, startTrickler(t, gw, rawHead(fmt.Sprintf("/huge-%d.bin", i), 5<<40), []byte("xxxx"), 100*time.Millisecond))
		head, part := formHead(fmt.Sprintf("/huge-form-%d", i), 5<<40)
		slow = append(slow, startTrickler(t, gw, head, part, 100*time.Millisecond))
	}
	time.Sleep(500 * time.Millisecond) // let them take whatever they can

	resp, took := putTimed(t, gw, "/normal.bin", 1*mib)
	r := decodeResponse(t, resp)
	if resp.StatusCode != http.StatusCreated || len(r.Data.Files) != 1 || r.Data.Files[0].Size != 1*mib {
		t.Fatalf("the 1 MiB upload got %d %+v", resp.StatusCode, r)
	}
	if took > 5*time.Second {
		t.Errorf("the 1 MiB upload took %v next to four slow 5 TiB clients, want a few seconds at most", took)
	}
	t.Logf("1 MiB upload took %v", took)

	// The raw 5 TiB announcements are refused up front; the trickling
	// forms are cut by the minimum rate.
	for i, tr := range slow {
		tr.wait(t, 20*time.Second)
		want, code := http.StatusRequestEntityTooLarge, "FILE_TOO_LARGE"
		if i%2 == 1 {
			want, code = http.StatusRequestTimeout, "REQUEST_TIMEOUT"
		}
		if tr.status != want || tr.code != code {
			t.Errorf("slow client %d: %d %q (err %v) after %v, want %d %s", i, tr.status, tr.code, tr.err, tr.took, want, code)
		}
	}
	env.DeletePrefix(context.Background(), prefix) // the normal upload's object
	assertNothingLeft(t, prefix)
}

// A slowloris client sends enough for a multipart upload to begin, then a
// byte now and then. It gets 408 with a JSON error once its allowance is used
// up, and the multipart upload it started is aborted.
func TestAbuseSlowlorisGets408AndItsUploadIsAborted(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{
		"part_size 5MiB", "read_timeout 2s", "min_rate 64KiB",
	}}.block())

	burst := make([]byte, 7*mib) // part 1 goes out, a multipart upload is open
	tr := startTrickler(t, gw, rawHead("/slowloris.bin", 64*mib), burst, 500*time.Millisecond)
	waitForMultipartUpload(t, prefix)

	tr.wait(t, 30*time.Second)
	if tr.status != http.StatusRequestTimeout || tr.code != "REQUEST_TIMEOUT" {
		t.Errorf("slowloris got %d %q (err %v), want 408 REQUEST_TIMEOUT", tr.status, tr.code, tr.err)
	}
	// 2 s of allowance, earning 1 s per 64 KiB: cut within a few seconds
	// of stalling, not after the server's (absent) timeouts.
	if tr.took > 15*time.Second {
		t.Errorf("slowloris was cut after %v", tr.took)
	}
	assertNothingLeft(t, prefix)
}

// A hundred slow clients at once: each holds a connection but (almost) no
// memory, a normal upload still goes through, every slow one gets 408, the
// gateway's peak RSS stays within the documented bound, and nothing is left.
func TestAbuseHundredSlowClients(t *testing.T) {
	prefix := testPrefix(t)
	const memoryLimit = 64 * mib
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{
		"part_size 5MiB", "concurrency 2", fmt.Sprintf("memory_limit %d", memoryLimit),
		"read_timeout 3s", "min_rate 16KiB", "memory_wait 10s", "max_uploads_per_client off",
	}}.block())
	baseline, err := gw.RSS()
	if err != nil {
		t.Fatal(err)
	}

	var slow []*trickler
	for i := range 100 {
		if i%2 == 0 {
			slow = append(slow, startTrickler(t, gw, rawHead(fmt.Sprintf("/slow-%d.bin", i), 1<<30), []byte("x"), 200*time.Millisecond))
		} else {
			head, part := formHead(fmt.Sprintf("/slow-form-%d", i), 1<<30)
			slow = append(slow, startTrickler(t, gw, head, part, 200*time.Millisecond))
		}
	}
	time.Sleep(time.Second)
	open := 0
	for _, tr := range slow {
		if !tr.answered() {
			open++
		}
	}
	if open < 90 {
		t.Fatalf("only %d of 100 slow clients are still connected after 1 s", open)
	}

	resp, took := putTimed(t, gw, "/normal.bin", 8*mib)
	if r := decodeResponse(t, resp); resp.StatusCode != http.StatusCreated {
		t.Fatalf("the normal upload got %d %+v next to 100 slow clients", resp.StatusCode, r)
	}
	if took > 10*time.Second {
		t.Errorf("the normal 8 MiB upload took %v next to 100 slow clients", took)
	}

	for i, tr := range slow {
		tr.wait(t, 30*time.Second)
		if tr.status != http.StatusRequestTimeout || tr.code != "REQUEST_TIMEOUT" {
			t.Errorf("slow client %d: %d %q (err %v), want 408 REQUEST_TIMEOUT", i, tr.status, tr.code, tr.err)
		}
	}
	peak, err := gw.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	// The README's bound: memory_limit for buffers and forms, plus Go's
	// heap headroom and per-connection state (a few MiB per 100 clients).
	bound := baseline + 2*memoryLimit + 64*mib
	t.Logf("baseline RSS %d MiB, peak %d MiB, bound %d MiB", baseline/mib, peak/mib, bound/mib)
	if peak > bound {
		t.Errorf("peak RSS %d MiB exceeds baseline %d MiB + 2 × memory_limit + 64 MiB", peak/mib, baseline/mib)
	}
	env.DeletePrefix(context.Background(), prefix)
	assertNothingLeft(t, prefix)
}

// One client may not open more than max_uploads_per_client uploads at once:
// the next gets 429 with Retry-After and a JSON error, and once its slow
// uploads have ended it can upload again.
func TestAbusePerClientUploadCap(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{
		"max_uploads_per_client 2", "read_timeout 2s", "min_rate 16KiB",
	}}.block())

	a := startTrickler(t, gw, rawHead("/a.bin", 1*mib), []byte("x"), 200*time.Millisecond)
	b := startTrickler(t, gw, rawHead("/b.bin", 1*mib), []byte("x"), 200*time.Millisecond)
	time.Sleep(300 * time.Millisecond)

	resp, _ := putTimed(t, gw, "/c.bin", 1000)
	if ra := resp.Header.Get("Retry-After"); ra == "" {
		t.Errorf("429 without Retry-After")
	}
	expectError(t, resp, http.StatusTooManyRequests, "TOO_MANY_UPLOADS")

	a.wait(t, 30*time.Second)
	b.wait(t, 30*time.Second)
	resp, _ = putTimed(t, gw, "/d.bin", 1000)
	if r := decodeResponse(t, resp); resp.StatusCode != http.StatusCreated {
		t.Errorf("after the slow uploads ended: %d %+v, want 201", resp.StatusCode, r)
	}
	env.DeletePrefix(context.Background(), prefix)
	assertNothingLeft(t, prefix)
}

// When memory_limit is used up by uploads that do not progress, a new
// upload waits memory_wait and then gets 503 with Retry-After instead of
// queueing for ever.
func TestAbuseMemoryExhaustedGets503(t *testing.T) {
	prefix := testPrefix(t)
	// concurrency 2: parts of at most 18/3 = 6 MiB; 6 MiB stays reserved
	// for the oldest upload, the others share 12 MiB.
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{
		"part_size 5MiB", "concurrency 2", "memory_limit 18MiB", "memory_wait 1s",
		"read_timeout 20s", "min_rate off", "max_uploads_per_client off",
	}}.block())

	// Three clients send most of their first part and stall: the younger
	// two hold 9 MiB of the 12 MiB left beside the oldest one's reserve.
	var hogs []*trickler
	for i := range 3 {
		hogs = append(hogs, startTrickler(t, gw, rawHead(fmt.Sprintf("/hog-%d.bin", i), 64*mib), make([]byte, 4*mib+mib/2), time.Hour))
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(time.Second)

	start := time.Now()
	resp, _ := putTimed(t, gw, "/late.bin", 4*mib)
	if ra := resp.Header.Get("Retry-After"); ra == "" {
		t.Errorf("503 without Retry-After")
	}
	expectError(t, resp, http.StatusServiceUnavailable, "SERVER_BUSY")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the refused upload waited %v; memory_wait is 1s", d)
	}

	for _, h := range hogs {
		h.close()
	}
	// Memory is back once the stalled clients are gone.
	var last *http.Response
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		last, _ = putTimed(t, gw, "/after.bin", 4*mib)
		if last.StatusCode == http.StatusCreated {
			break
		}
		last.Body.Close()
	}
	if r := decodeResponse(t, last); last.StatusCode != http.StatusCreated {
		t.Errorf("after the stalled clients left: %d %+v", last.StatusCode, r)
	}
	env.DeletePrefix(context.Background(), prefix)
	assertNothingLeft(t, prefix)
}

// One client opens seven uploads, sends 15 MiB of each (just below the
// 16 MiB part boundary) and then trickles, to hold as much of memory_limit as
// it can for as long as it can. Before max_memory_per_client it held 111 of
// 120 MiB and another client's upload got 503 after memory_wait. Now the
// first client's uploads together stop at its share: its further uploads
// wait and get 503, and the other client's 40 MiB upload goes through.
func TestAbuseOneClientCannotStarveAnother(t *testing.T) {
	prefix := testPrefix(t)
	// concurrency 4: parts of at most 120/5 = 24 MiB; max_memory_per_client
	// is then two parts, 48 MiB.
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{
		"part_size 16MiB", "concurrency 4", "memory_limit 120MiB", "memory_wait 3s",
		"read_timeout 60s", "min_rate off",
	}}.block())

	var hogs []*trickler
	for i := range 7 {
		hogs = append(hogs, startTrickler(t, gw, rawHead(fmt.Sprintf("/hog-%d.bin", i), 64*mib), make([]byte, 15*mib), 500*time.Millisecond))
	}
	time.Sleep(2 * time.Second) // the bursts have arrived

	// The other client connects from another loopback address.
	other := *gw.Client
	tr := gw.Client.Transport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext
	other.Transport = tr
	otherGW := *gw
	otherGW.Client = &other
	resp, took := putTimed(t, &otherGW, "/other.bin", 40*mib)
	if r := decodeResponse(t, resp); resp.StatusCode != http.StatusCreated {
		t.Fatalf("the other client's upload got %d %+v next to one client holding several partial parts", resp.StatusCode, r)
	}
	t.Logf("the other client's 40 MiB upload took %v", took)

	// The uploads beyond the first client's share are refused once they
	// have waited memory_wait.
	busy := 0
	for deadline := time.Now().Add(10 * time.Second); busy == 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, h := range hogs {
			if h.answered() && h.status == http.StatusServiceUnavailable && h.code == "SERVER_BUSY" {
				busy++
			}
		}
	}
	t.Logf("%d of the first client's 7 uploads were refused", busy)
	if busy == 0 {
		t.Errorf("none of the first client's uploads was refused: it holds more than its share")
	}
	for _, h := range hogs {
		h.close()
	}
	env.DeletePrefix(context.Background(), prefix)
	assertNothingLeft(t, prefix)
}

// A form of thousands of empty file parts (a scaled-down version of the
// 150,000-part, 10 MB form) is stopped by the default max_files 100: at most
// 100 objects are written and rolled back, quickly, and nothing is left.
func TestAbuseManyEmptyFilesStoppedByDefaultMaxFiles(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, gatewayOpts{prefix: prefix}.block())

	var b bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"f%d\"; filename=\"e\"\r\n\r\n\r\n", secBoundary, i)
	}
	fmt.Fprintf(&b, "--%s--\r\n", secBoundary)
	before := scrapeMetric(t, gw, "upload_gateway_rolled_back_objects_total")
	start := time.Now()
	resp, err := gw.Client.Post(gw.URL+"/many", "multipart/form-data; boundary="+secBoundary, &b)
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, resp, http.StatusRequestEntityTooLarge, "TOO_MANY_FILES")
	if n := scrapeMetric(t, gw, "upload_gateway_rolled_back_objects_total") - before; n != 100 {
		t.Errorf("rolled back %v objects, want the 100 stored before max_files", n)
	}
	t.Logf("20,000 empty file parts refused after %v", time.Since(start))
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v", d)
	}
	assertNothingLeft(t, prefix)
}

// In pass mode, a field named like the ones the gateway writes stops the
// form where it stands: the files after it are never stored.
func TestAbuseReservedFieldStopsBeforeLaterFiles(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{"output pass"}}.block()+"\n\trespond 200")

	var parts []secPart
	parts = append(parts, secPart{disposition: `form-data; name="doc"; filename="a.txt"`, contentType: "text/plain", body: []byte("first")})
	parts = append(parts, secPart{disposition: `form-data; name="doc.key"`, body: []byte("uploads/someone-elses-file")})
	for i := range 50 {
		parts = append(parts, secPart{disposition: fmt.Sprintf(`form-data; name="f%d"; filename="%d.txt"`, i, i), contentType: "text/plain", body: []byte("later")})
	}
	before := scrapeMetric(t, gw, "upload_gateway_rolled_back_objects_total")
	expectError(t, secPost(t, gw, "/form", parts...), http.StatusBadRequest, "RESERVED_FIELD")
	if n := scrapeMetric(t, gw, "upload_gateway_rolled_back_objects_total") - before; n != 1 {
		t.Errorf("rolled back %v objects, want only the file before the forged field", n)
	}
	assertNothingLeft(t, prefix)
}
