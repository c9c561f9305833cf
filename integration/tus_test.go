//go:build integration

package integration_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

const tusSecret = "tus-integration-secret-0123456789abcdef"

// tusGateways starts n gateways serving upload_tus at /tus/ over the same
// bucket, with nothing shared but S3 and the secret. Users alice and bob
// sign in with basic auth (passwords alice-password, bob-password).
func tusGateways(t *testing.T, n int, lines ...string) (gws []*harness.Gateway, prefix, temp string) {
	t.Helper()
	return tusGatewaysWith(t, n, "", lines...)
}

// tusGatewaysWith is tusGateways with more of the site block (routes
// besides /tus/*).
func tusGatewaysWith(t *testing.T, n int, extra string, lines ...string) (gws []*harness.Gateway, prefix, temp string) {
	t.Helper()
	return tusGatewaysAt(t, n, "", extra, lines...)
}

// tusGatewaysAt is tusGatewaysWith with another S3 endpoint ("" for the
// test S3 server).
func tusGatewaysAt(t *testing.T, n int, endpoint, extra string, lines ...string) (gws []*harness.Gateway, prefix, temp string) {
	t.Helper()
	prefix = testPrefix(t)
	temp = fmt.Sprintf("it-tus-tmp/%s-%d/", strings.ReplaceAll(t.Name(), "/", "-"), rand.Uint32())
	t.Cleanup(func() { env.DeletePrefix(context.Background(), temp) })
	site := fmt.Sprintf(`route /tus/* {
		basic_auth {
			alice $2a$04$mnO5yJ1aPyHXu/2gqqRPkuYCAmgIi3VLARN6bpJ9MD86J8xOx6gXq
			bob $2a$04$9Dcsx3OT1TrZc4VOtGSTs.LomeePGT54Th7IUoZHREAgH3ufQ0OD6
		}
		upload_tus {
			%s
			prefix %s
			temp_prefix %s
			secret {env.TUS_SECRET}
			part_size 5MiB
			%s
		}
	}
	%s`, harness.S3Settings(endpoint), prefix, temp, strings.Join(lines, "\n\t\t\t"), extra)
	for range n {
		gws = append(gws, startGatewayWith(t, harness.GatewayConfig{Site: site, Env: []string{"TUS_SECRET=" + tusSecret}}))
	}
	return gws, prefix, temp
}

func basicAuth(user string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+user+"-password"))
}

// tusModules is the node_modules directory apps-up.sh installed
// tus-js-client into.
func tusModules(t *testing.T) string {
	return npmModules(t, "tus-client", "UPLOAD_GATEWAY_TUS_CLIENT_DIR", "tus-js-client")
}

type tusResult struct {
	URL    string `json:"url"`
	Offset int64  `json:"offset"`
	Done   bool   `json:"done"`
	Error  string `json:"error"`
}

// runTusClient runs testenv/tus-client/upload.js (tus-js-client) in a
// new node process.
func runTusClient(t *testing.T, opts map[string]any) tusResult {
	t.Helper()
	res, err := startTusClient(t, opts)()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// startTusClient starts testenv/tus-client/upload.js (tus-js-client) in
// a new node process; wait returns its result, or an error if it failed.
func startTusClient(t *testing.T, opts map[string]any) (wait func() (tusResult, error)) {
	t.Helper()
	arg, _ := json.Marshal(opts)
	abs, _ := filepath.Abs("testenv/tus-client/upload.js")
	cmd := exec.Command("node", abs, string(arg))
	// The gateways' certificates come from Caddy's internal CA.
	cmd.Env = append(os.Environ(), "NODE_PATH="+tusModules(t), "NODE_TLS_REJECT_UNAUTHORIZED=0", "NODE_NO_WARNINGS=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting tus-js-client: %v", err)
	}
	return func() (tusResult, error) {
		err := cmd.Wait()
		var res tusResult
		if jerr := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); jerr != nil || err != nil {
			return res, fmt.Errorf("tus-js-client: %v %v\nstdout: %s\nstderr: %s", err, jerr, stdout.String(), stderr.String())
		}
		return res, nil
	}
}

func tusHead(t *testing.T, gw *harness.Gateway, url, user string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, url, nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", basicAuth(user))
	resp, err := gw.Client.Do(req)
	if err != nil {
		t.Fatalf("HEAD %s: %v", url, err)
	}
	resp.Body.Close()
	return resp
}

// assertSHA256Tags checks the tags a finished upload gets, as streamed
// uploads do.
func assertSHA256Tags(t *testing.T, key string, data []byte) {
	t.Helper()
	sum := sha256.Sum256(data)
	if tags := objectTags(t, key); tags["sha256"] != hex.EncodeToString(sum[:]) || tags["size"] != strconv.Itoa(len(data)) {
		t.Errorf("tags of %s: %v, want sha256 %x and size %d", key, tags, sum, len(data))
	}
}

// onlyObject returns the one object under prefix.
func onlyObject(t *testing.T, prefix string) string {
	t.Helper()
	uploads, objects, err := env.Leftovers(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(uploads) != 0 {
		t.Errorf("multipart uploads left open under %s: %v", prefix, uploads)
	}
	if len(objects) != 1 {
		t.Fatalf("objects under %s: %v, want one", prefix, objects)
	}
	return objects[0]
}

// TestTusJSClientResumesOnAnotherInstance uploads 50 MiB with
// tus-js-client in 4 MiB chunks (below S3's 5 MiB minimum part, so the
// tail object carries bytes between PATCHes), stops the client mid-PATCH,
// and resumes with a new client process against a second gateway.
func TestTusJSClientResumesOnAnotherInstance(t *testing.T) {
	// arrange
	gws, prefix, temp := tusGateways(t, 2)
	data := fileBytes(t, pdfMagic, 14, 50*mib)
	file := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	common := map[string]any{"file": file, "chunkSize": 4 * mib, "headers": map[string]string{"Authorization": basicAuth("alice")}}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range common {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}

	// act: the first client stops mid-PATCH after about 22 MiB
	first := runTusClient(t, with("endpoint", gws[0].URL+"/tus/", "abortAfter", 22*mib+12345))
	if first.Done || !strings.HasPrefix(first.URL, gws[0].URL+"/tus/") {
		t.Fatalf("first client: %+v", first)
	}
	url2 := gws[1].URL + strings.TrimPrefix(first.URL, gws[0].URL)
	head := tusHead(t, gws[1], url2, "alice")
	offset, _ := strconv.ParseInt(head.Header.Get("Upload-Offset"), 10, 64)
	t.Logf("stopped after %d bytes sent; the second gateway reports Upload-Offset %d", first.Offset, offset)
	if head.StatusCode != http.StatusOK || offset <= 0 || offset >= 50*mib || head.Header.Get("Upload-Length") != strconv.Itoa(50*mib) {
		t.Fatalf("HEAD on the second gateway: %d offset %q length %q", head.StatusCode, head.Header.Get("Upload-Offset"), head.Header.Get("Upload-Length"))
	}
	if resp := tusHead(t, gws[1], url2, "bob"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("HEAD by another user: %d, want 403", resp.StatusCode)
	}
	if offset%(5*mib) != 0 {
		_, tails, _ := env.Leftovers(context.Background(), temp)
		t.Logf("temporary objects while unfinished: %v", tails)
	}
	second := runTusClient(t, with("endpoint", gws[1].URL+"/tus/", "uploadUrl", url2))

	// assert
	if !second.Done {
		t.Fatalf("second client: %+v", second)
	}
	key := onlyObject(t, prefix)
	sum, n := objectSHA256(t, key)
	if n != 50*mib || sum != hex.EncodeToString(want[:]) {
		t.Errorf("stored %d bytes with SHA-256 %s, want %d bytes %x", n, sum, 50*mib, want)
	}
	headObj := assertEncrypted(t, key)
	if headObj.Metadata["uploaded-by"] != "alice" || headObj.Metadata["original-name"] != "big.bin" {
		t.Errorf("object metadata %v", headObj.Metadata)
	}
	assertSHA256Tags(t, key, data)
	if logs := gws[1].Logs(); !strings.Contains(logs, `"action":"upload"`) || !strings.Contains(logs, key) {
		t.Errorf("the second gateway logged no audit line for the completed upload of %s", key)
	}
	assertNothingLeft(t, temp)
}

// TestTusConcurrentPatchAcrossInstances sends two PATCHes with different
// bodies for the same upload to two gateways at once, repeatedly: one
// wins (204), the other gets 409, and the object is the winner's body.
func TestTusConcurrentPatchAcrossInstances(t *testing.T) {
	gws, prefix, temp := tusGateways(t, 2)
	const rounds = 6
	size := 6*mib + 321
	bodies := [2][]byte{fileBytes(t, pdfMagic, 21, int64(size)), fileBytes(t, pngMagic, 22, int64(size))}
	wins := [2]int{}
	for round := range rounds {
		req, _ := http.NewRequest(http.MethodPost, gws[0].URL+"/tus/", nil)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", basicAuth("alice"))
		req.Header.Set("Upload-Length", strconv.Itoa(size))
		resp, err := gws[0].Client.Do(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("round %d: POST: %v %v", round, err, resp)
		}
		resp.Body.Close()
		path := strings.TrimPrefix(resp.Header.Get("Location"), gws[0].URL)

		var wg sync.WaitGroup
		start := make(chan struct{})
		status := [2]int{}
		for i := range 2 {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPatch, gws[i].URL+path, bytes.NewReader(bodies[i]))
				req.Header.Set("Tus-Resumable", "1.0.0")
				req.Header.Set("Authorization", basicAuth("alice"))
				req.Header.Set("Content-Type", "application/offset+octet-stream")
				req.Header.Set("Upload-Offset", "0")
				<-start
				resp, err := gws[i].Client.Do(req)
				if err != nil {
					t.Errorf("round %d: PATCH %d: %v", round, i, err)
					return
				}
				resp.Body.Close()
				status[i] = resp.StatusCode
			})
		}
		close(start)
		wg.Wait()
		var winner int
		switch status {
		case [2]int{204, 409}:
			winner = 0
		case [2]int{409, 204}:
			winner = 1
		default:
			t.Fatalf("round %d: statuses %v, want one 204 and one 409", round, status)
		}
		wins[winner]++
		key := onlyObject(t, prefix)
		sum, n := objectSHA256(t, key)
		want := sha256.Sum256(bodies[winner])
		if n != int64(size) || sum != hex.EncodeToString(want[:]) {
			t.Fatalf("round %d: object is not gateway %d's body: %d bytes, SHA-256 %s", round, winner, n, sum)
		}
		env.DeletePrefix(context.Background(), prefix)
	}
	t.Logf("%d rounds: gateway 0 won %d, gateway 1 won %d", rounds, wins[0], wins[1])
	assertNothingLeft(t, temp)
}

// TestTusGatewayKilledMidPatch kills the gateway a PATCH is writing
// through, leaving its lock behind: tus-js-client, resuming on another
// gateway, gets 409 until lock_timeout, then takes the lock over and
// finishes, and the object equals the source.
func TestTusGatewayKilledMidPatch(t *testing.T) {
	// arrange
	gws, prefix, temp := tusGateways(t, 2, "lock_timeout 3s")
	data := fileBytes(t, pdfMagic, 15, 20*mib)
	file := filepath.Join(t.TempDir(), "killed.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	auth := map[string]string{"Authorization": basicAuth("alice")}
	first := runTusClient(t, map[string]any{"endpoint": gws[0].URL + "/tus/", "file": file, "chunkSize": 4 * mib, "headers": auth, "abortAfter": 6 * mib})
	path := strings.TrimPrefix(first.URL, gws[0].URL)
	offset := tusHead(t, gws[1], gws[1].URL+path, "alice").Header.Get("Upload-Offset")

	// act: a PATCH through the first gateway holds the lock when it dies
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPatch, gws[0].URL+path, pr)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", basicAuth("alice"))
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", offset)
	go func() {
		if resp, err := gws[0].Client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	off, _ := strconv.Atoi(offset)
	go pw.Write(data[off : off+mib])
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, objects, _ := env.Leftovers(context.Background(), temp)
		if slicesContainsLock(objects) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the PATCH took no lock: %v", objects)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(gws[0].PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pw.CloseWithError(io.ErrClosedPipe)
	start := time.Now()
	second := runTusClient(t, map[string]any{"endpoint": gws[1].URL + "/tus/", "file": file, "chunkSize": 4 * mib, "headers": auth, "uploadUrl": gws[1].URL + path})

	// assert
	t.Logf("resumed from offset %s after the kill; finished in %v (lock_timeout 3s)", offset, time.Since(start).Round(time.Millisecond))
	if !second.Done {
		t.Fatalf("second client: %+v", second)
	}
	key := onlyObject(t, prefix)
	sum, n := objectSHA256(t, key)
	want := sha256.Sum256(data)
	if n != 20*mib || sum != hex.EncodeToString(want[:]) {
		t.Errorf("stored %d bytes with SHA-256 %s, want %x", n, sum, want)
	}
	assertEncrypted(t, key)
	assertSHA256Tags(t, key, data)
	assertNothingLeft(t, temp)
}

func slicesContainsLock(keys []string) bool {
	for _, k := range keys {
		if strings.Contains(k, "/lock-") {
			return true
		}
	}
	return false
}

// tusRequest sends one tus request as alice; headers are name, value
// pairs.
func tusRequest(t *testing.T, gw *harness.Gateway, method, url string, body []byte, headers ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", basicAuth("alice"))
	if method == http.MethodPatch {
		req.Header.Set("Content-Type", "application/offset+octet-stream")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := gw.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestTusChecksum: the checksum extension on the real S3. A PATCH of 12
// MiB (staged in parts while it arrives) whose body does not match its
// Upload-Checksum gets 460 and leaves the upload as it was, on every
// instance; the right body is then appended, and the object equals the
// source.
func TestTusChecksum(t *testing.T) {
	// arrange
	gws, prefix, temp := tusGateways(t, 2)
	data := fileBytes(t, pdfMagic, 31, 20*mib+11)
	opts := tusRequest(t, gws[0], http.MethodOptions, gws[0].URL+"/tus/", nil)
	if !strings.Contains(opts.Header.Get("Tus-Extension"), "checksum") || !strings.Contains(opts.Header.Get("Tus-Checksum-Algorithm"), "sha1") {
		t.Fatalf("OPTIONS: Tus-Extension %q, Tus-Checksum-Algorithm %q", opts.Header.Get("Tus-Extension"), opts.Header.Get("Tus-Checksum-Algorithm"))
	}
	created := tusRequest(t, gws[0], http.MethodPost, gws[0].URL+"/tus/", nil, "Upload-Length", strconv.Itoa(len(data)))
	if created.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d", created.StatusCode)
	}
	path := strings.TrimPrefix(created.Header.Get("Location"), gws[0].URL)
	sha1sum := func(b []byte) string {
		s := sha1.Sum(b)
		return "sha1 " + base64.StdEncoding.EncodeToString(s[:])
	}
	first := 7*mib + 5 // a 5 MiB part and a tail
	if resp := tusRequest(t, gws[0], http.MethodPatch, gws[0].URL+path, data[:first], "Upload-Offset", "0", "Upload-Checksum", sha1sum(data[:first])); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first PATCH: %d", resp.StatusCode)
	}
	_, tempBefore, _ := env.Leftovers(context.Background(), temp)
	chunk := data[first : first+12*mib+7]
	corrupt := bytes.Clone(chunk)
	corrupt[len(corrupt)/2] ^= 0x40

	// act
	resp := tusRequest(t, gws[1], http.MethodPatch, gws[1].URL+path, corrupt, "Upload-Offset", strconv.Itoa(first), "Upload-Checksum", sha1sum(chunk))

	// assert
	if resp.StatusCode != 460 {
		t.Fatalf("PATCH with a corrupted body: %d, want 460", resp.StatusCode)
	}
	for i, gw := range gws {
		if got := tusHead(t, gw, gw.URL+path, "alice").Header.Get("Upload-Offset"); got != strconv.Itoa(first) {
			t.Errorf("gateway %d: Upload-Offset after the mismatch %s, want %d", i, got, first)
		}
	}
	if _, tempAfter, _ := env.Leftovers(context.Background(), temp); strings.Join(tempAfter, ",") != strings.Join(tempBefore, ",") {
		t.Errorf("temporary objects after the mismatch %v, want %v", tempAfter, tempBefore)
	}
	if resp := tusRequest(t, gws[1], http.MethodPatch, gws[1].URL+path, chunk, "Upload-Offset", strconv.Itoa(first), "Upload-Checksum", sha1sum(chunk)); resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != strconv.Itoa(first+len(chunk)) {
		t.Fatalf("PATCH with the right body: %d offset %s", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}
	rest := data[first+len(chunk):]
	crc := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(rest)))
	if resp := tusRequest(t, gws[0], http.MethodPatch, gws[0].URL+path, rest, "Upload-Offset", strconv.Itoa(first+len(chunk)), "Upload-Checksum", "crc32 "+crc); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("last PATCH: %d", resp.StatusCode)
	}
	key := onlyObject(t, prefix)
	sum, n := objectSHA256(t, key)
	want := sha256.Sum256(data)
	if n != int64(len(data)) || sum != hex.EncodeToString(want[:]) {
		t.Errorf("stored %d bytes with SHA-256 %s, want %d bytes %x", n, sum, len(data), want)
	}
	assertEncrypted(t, key)
	assertSHA256Tags(t, key, data)
	assertNothingLeft(t, temp)
}

// TestTusQuotaAndTermination: max_open_uploads holds across instances
// (counted from S3), answering 429 with a JSON code; DELETE removes the
// multipart upload and every temporary object at once (tail, SHA-256
// state, deferred length, open marker), which frees a place.
func TestTusQuotaAndTermination(t *testing.T) {
	// arrange
	gws, prefix, temp := tusGateways(t, 2, "max_open_uploads 2")
	post := func(gw *harness.Gateway, user string, headers ...string) *http.Response {
		return tusRequest(t, gw, http.MethodPost, gw.URL+"/tus/", nil, append([]string{"Authorization", basicAuth(user)}, headers...)...)
	}
	first := post(gws[0], "alice", "Upload-Defer-Length", "1")
	second := post(gws[0], "alice", "Upload-Length", "10")
	if first.StatusCode != http.StatusCreated || second.StatusCode != http.StatusCreated {
		t.Fatalf("creations: %d %d", first.StatusCode, second.StatusCode)
	}
	path := strings.TrimPrefix(first.Header.Get("Location"), gws[0].URL)
	data := fileBytes(t, pdfMagic, 41, 7*mib+5)
	if resp := tusRequest(t, gws[0], http.MethodPatch, gws[0].URL+path, data, "Upload-Offset", "0", "Upload-Length", strconv.Itoa(20*mib)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", resp.StatusCode)
	}
	uploads, tempObjects, _ := env.Leftovers(context.Background(), temp)
	t.Logf("temporary objects of two open uploads: %v", tempObjects)
	if len(tempObjects) != 5 || len(uploads) != 0 {
		t.Fatalf("temporary objects %v, want a tail, a SHA-256 state, a length and two open markers", tempObjects)
	}

	// act
	req, _ := http.NewRequest(http.MethodPost, gws[1].URL+"/tus/", nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", basicAuth("alice"))
	req.Header.Set("Upload-Length", "10")
	resp, err := gws[1].Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	jerr := json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()

	// assert
	if resp.StatusCode != http.StatusTooManyRequests || jerr != nil || body.Error.Code != "TOO_MANY_OPEN_UPLOADS" {
		t.Fatalf("third open upload on the other gateway: %d code %q (%v), want 429 TOO_MANY_OPEN_UPLOADS", resp.StatusCode, body.Error.Code, jerr)
	}
	if resp := post(gws[1], "bob", "Upload-Length", "10"); resp.StatusCode != http.StatusCreated {
		t.Errorf("bob's upload: %d, want 201", resp.StatusCode)
	}
	if resp := tusRequest(t, gws[1], http.MethodDelete, gws[1].URL+path, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	_, tempObjects, _ = env.Leftovers(context.Background(), temp)
	if len(tempObjects) != 2 {
		t.Errorf("temporary objects after DELETE %v, want only the two other uploads' open markers", tempObjects)
	}
	out, err := env.S3().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &env.Bucket, Prefix: &prefix})
	if err != nil || len(out.Uploads) != 2 {
		t.Errorf("multipart uploads after DELETE: %v (%v), want the two others", out, err)
	}
	if resp := post(gws[1], "alice", "Upload-Length", "10"); resp.StatusCode != http.StatusCreated {
		t.Errorf("creation after DELETE freed a place: %d, want 201", resp.StatusCode)
	}
	env.DeletePrefix(context.Background(), prefix)
}

// TestTusJanitorRemovesExpired: an upload abandoned mid-way (a part, a
// tail, a lock left by a dead PATCH, an open marker) is removed entirely
// by the janitor of a running gateway once upload_ttl has passed, and
// the sweep is reported on /metrics.
func TestTusJanitorRemovesExpired(t *testing.T) {
	// arrange
	gws, prefix, temp := tusGateways(t, 1, "upload_ttl 3s", "max_open_uploads 5", "janitor {\n\t\t\t\tmax_age 4s\n\t\t\t\tinterval 1s\n\t\t\t}")
	created := tusRequest(t, gws[0], http.MethodPost, gws[0].URL+"/tus/", nil, "Upload-Length", strconv.Itoa(20*mib))
	if created.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d", created.StatusCode)
	}
	path := strings.TrimPrefix(created.Header.Get("Location"), gws[0].URL)
	if resp := tusRequest(t, gws[0], http.MethodPatch, gws[0].URL+path, fileBytes(t, pdfMagic, 42, 7*mib+5), "Upload-Offset", "0"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", resp.StatusCode)
	}
	ctx := context.Background()
	_, tempObjects, _ := env.Leftovers(ctx, temp)
	dir := tempObjects[0][:strings.LastIndex(tempObjects[0], "/")+1]
	if _, err := env.S3().PutObject(ctx, &s3.PutObjectInput{Bucket: &env.Bucket, Key: aws.String(dir + "lock-00000007"), Body: bytes.NewReader(nil)}); err != nil {
		t.Fatal(err)
	}
	_, tempObjects, _ = env.Leftovers(ctx, temp)
	t.Logf("abandoned upload's temporary objects: %v", tempObjects)

	// act: wait for the janitor
	start := time.Now()
	for {
		uploads, objects, err := env.Leftovers(ctx, prefix)
		_, tempLeft, terr := env.Leftovers(ctx, temp)
		if err == nil && terr == nil && len(uploads) == 0 && len(objects) == 0 && len(tempLeft) == 0 {
			break
		}
		if time.Since(start) > 40*time.Second {
			t.Fatalf("after %v: uploads %v, objects %v, temporary objects %v", time.Since(start), uploads, objects, tempLeft)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// assert
	t.Logf("the janitor removed the expired upload %v after its last PATCH (upload_ttl 3s, max_age 4s, interval 1s)", time.Since(start).Round(100*time.Millisecond))
	if resp := tusHead(t, gws[0], gws[0].URL+path, "alice"); resp.StatusCode != http.StatusGone {
		t.Errorf("HEAD of the swept upload: %d, want 410", resp.StatusCode)
	}
	if got := scrapeMetric(t, gws[0], `upload_gateway_orphans_aborted_total{prefix="`+prefix+`"}`); got != 1 {
		t.Errorf("orphans_aborted_total = %v, want 1", got)
	}
	if logs := gws[0].Logs(); !strings.Contains(logs, "resumable upload janitor swept") {
		t.Error("no janitor log line")
	}
}

// TestTusS3Faults: tus-js-client uploads 20 MiB in 8 MiB chunks through
// a gateway whose S3 answers fail: UploadPart 500s beyond the SDK's
// retries (the PATCH fails after storing what it could), UploadPart and
// PutObject (tails, locks, the open marker) answers lost after S3 acted,
// and every CompleteMultipartUpload answer lost. The client's retries
// resume from the offset S3 holds, and the object equals the source with
// nothing left behind.
func TestTusS3Faults(t *testing.T) {
	// arrange
	proxy, err := harness.NewHTTPFaultProxy(env.S3Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	gws, prefix, temp := tusGatewaysAt(t, 1, proxy.URL, "", "lock_timeout 2s", "max_open_uploads 5")
	data := fileBytes(t, pdfMagic, 61, 20*mib+333)
	file := writeTestFile(t, "faults.bin", data)
	proxy.Inject(harness.Fault{Op: harness.OpUploadPart, Skip: 1, Limit: 3, Status: 500})
	proxy.Inject(harness.Fault{Op: harness.OpUploadPart, Skip: 2, Limit: 2, Status: 500, Lost: true})
	proxy.Inject(harness.Fault{Op: harness.OpPutObject, Skip: 4, Limit: 1, Status: 503, Lost: true})
	proxy.Inject(harness.Fault{Op: harness.OpPutObject, Skip: 5, Limit: 1, Status: 500, Lost: true})
	proxy.Inject(harness.Fault{Op: harness.OpCompleteMultipartUpload, Status: 500, Lost: true})

	// act
	start := time.Now()
	res := runTusClient(t, map[string]any{"endpoint": gws[0].URL + "/tus/", "file": file, "chunkSize": 8 * mib,
		"headers": map[string]string{"Authorization": basicAuth("alice")}})

	// assert
	faultLogRecords(t, proxy)
	injected := 0
	for _, r := range proxy.Records() {
		if r.Injected {
			injected++
		}
	}
	t.Logf("finished in %v with %d S3 answers failed or lost", time.Since(start).Round(time.Millisecond), injected)
	if !res.Done {
		t.Fatalf("tus-js-client: %+v", res)
	}
	if injected < 10 || proxy.Count(harness.OpCompleteMultipartUpload, 500) == 0 {
		t.Errorf("only %d faults were injected", injected)
	}
	key := onlyObject(t, prefix)
	sum, n := objectSHA256(t, key)
	want := sha256.Sum256(data)
	if n != int64(len(data)) || sum != hex.EncodeToString(want[:]) {
		t.Errorf("stored %d bytes with SHA-256 %s, want %d bytes %x", n, sum, len(data), want)
	}
	assertEncrypted(t, key)
	assertSHA256Tags(t, key, data)
	assertNothingLeft(t, temp)
}

// TestTusInterruptedTwiceOnThreeInstances: tus-js-client uploads 50 MiB
// in 4 MiB chunks and is interrupted twice, each resume going to another
// of three gateways that share nothing but S3: the first client stops
// mid-PATCH; a second one resumes on the second gateway, which is killed
// mid-PATCH (its lock stays in S3); a third one resumes on the third
// gateway, waits out lock_timeout with 409s, and finishes.
func TestTusInterruptedTwiceOnThreeInstances(t *testing.T) {
	// arrange
	gws, prefix, temp := tusGateways(t, 3, "lock_timeout 3s")
	data := fileBytes(t, pdfMagic, 71, 50*mib)
	file := writeTestFile(t, "twice.bin", data)
	auth := map[string]string{"Authorization": basicAuth("alice")}
	opts := func(gw *harness.Gateway, kv ...any) map[string]any {
		m := map[string]any{"endpoint": gw.URL + "/tus/", "file": file, "chunkSize": 4 * mib, "headers": auth}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	offset := func(path string) int64 {
		n, _ := strconv.ParseInt(tusHead(t, gws[2], gws[2].URL+path, "alice").Header.Get("Upload-Offset"), 10, 64)
		return n
	}

	// act 1: the client stops mid-PATCH
	first := runTusClient(t, opts(gws[0], "abortAfter", 14*mib+4321))
	if first.Done {
		t.Fatalf("first client: %+v", first)
	}
	path := strings.TrimPrefix(first.URL, gws[0].URL)
	afterFirst := offset(path)

	// act 2: another client resumes on the second gateway, which dies
	wait := startTusClient(t, opts(gws[1], "uploadUrl", gws[1].URL+path))
	var killedAt int64
	deadline := time.Now().Add(60 * time.Second)
	for killedAt == 0 && time.Now().Before(deadline) {
		if n := offset(path); n >= afterFirst+8*mib {
			if n >= 50*mib {
				t.Fatalf("the second client finished (offset %d) before the gateway could be killed", n)
			}
			gws[1].Kill()
			killedAt = n
			_, objs, _ := env.Leftovers(context.Background(), temp)
			t.Logf("a PATCH held the lock when the gateway died: %v", slicesContainsLock(objs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	second, err := wait()
	afterKill := offset(path)
	t.Logf("first client stopped at %d (S3 holds %d); second gateway killed at offset %d, S3 holds %d; second client done %v, failed %v",
		first.Offset, afterFirst, killedAt, afterKill, second.Done, err != nil)
	if killedAt == 0 || second.Done {
		t.Fatalf("the second gateway was not killed mid-upload: killed at %d, second client %+v", killedAt, second)
	}

	// act 3: a third client resumes on the third gateway
	start := time.Now()
	third := runTusClient(t, opts(gws[2], "uploadUrl", gws[2].URL+path))

	// assert
	t.Logf("third client finished in %v (lock_timeout 3s)", time.Since(start).Round(time.Millisecond))
	if !third.Done {
		t.Fatalf("third client: %+v", third)
	}
	if afterFirst <= 0 || afterKill <= afterFirst || afterKill >= 50*mib {
		t.Errorf("offsets %d then %d: the interruptions were not mid-upload", afterFirst, afterKill)
	}
	key := onlyObject(t, prefix)
	sum, n := objectSHA256(t, key)
	want := sha256.Sum256(data)
	if n != int64(len(data)) || sum != hex.EncodeToString(want[:]) {
		t.Errorf("stored %d bytes with SHA-256 %s, want %x", n, sum, want)
	}
	assertEncrypted(t, key)
	assertSHA256Tags(t, key, data)
	if logs := gws[2].Logs(); !strings.Contains(logs, `"action":"upload"`) || !strings.Contains(logs, key) {
		t.Errorf("the third gateway logged no audit line for the completed upload of %s", key)
	}
	assertNothingLeft(t, temp)
}

// TestTusChecksumS3Faults: a checksummed PATCH of 16 MiB is staged, then
// copied into the upload while S3's UploadPartCopy answers are lost or
// fail beyond the SDK's retries. The PATCH fails, HEAD reports an offset
// within what S3 holds as parts (verified bytes only), and the client
// sending the rest from there, with its checksum, finishes the upload.
func TestTusChecksumS3Faults(t *testing.T) {
	// arrange
	proxy, err := harness.NewHTTPFaultProxy(env.S3Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	gws, prefix, temp := tusGatewaysAt(t, 1, proxy.URL, "", "lock_timeout 2s")
	gw := gws[0]
	data := fileBytes(t, pdfMagic, 81, 16*mib+77)
	created := tusRequest(t, gw, http.MethodPost, gw.URL+"/tus/", nil, "Upload-Length", strconv.Itoa(len(data)))
	if created.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d", created.StatusCode)
	}
	path := strings.TrimPrefix(created.Header.Get("Location"), gw.URL)
	sha1sum := func(b []byte) string {
		s := sha1.Sum(b)
		return "sha1 " + base64.StdEncoding.EncodeToString(s[:])
	}
	// Parts 1 and 2 are copied from staged objects: the first copy's
	// answer is lost once (the SDK retries it), the second fails 3 times.
	proxy.Inject(harness.Fault{Op: harness.OpUploadPart, Limit: 1, Status: 500, Lost: true})
	proxy.Inject(harness.Fault{Op: harness.OpUploadPart, Skip: 1, Limit: 3, Status: 500})

	// act
	resp := tusRequest(t, gw, http.MethodPatch, gw.URL+path, data, "Upload-Offset", "0", "Upload-Checksum", sha1sum(data))

	// assert
	head := tusHead(t, gw, gw.URL+path, "alice")
	offset, _ := strconv.Atoi(head.Header.Get("Upload-Offset"))
	t.Logf("PATCH: %d; HEAD: %d, Upload-Offset %d", resp.StatusCode, head.StatusCode, offset)
	if resp.StatusCode != http.StatusInternalServerError || head.StatusCode != http.StatusOK || offset%(5*mib) != 0 || offset >= len(data) {
		t.Fatalf("PATCH %d, then Upload-Offset %d: want 500 and an offset at a copied part's end", resp.StatusCode, offset)
	}
	rest := data[offset:]
	if resp := tusRequest(t, gw, http.MethodPatch, gw.URL+path, rest, "Upload-Offset", strconv.Itoa(offset), "Upload-Checksum", sha1sum(rest)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("resuming PATCH: %d", resp.StatusCode)
	}
	faultLogRecords(t, proxy)
	key := onlyObject(t, prefix)
	sum, n := objectSHA256(t, key)
	want := sha256.Sum256(data)
	if n != int64(len(data)) || sum != hex.EncodeToString(want[:]) {
		t.Errorf("stored %d bytes with SHA-256 %s, want %x", n, sum, want)
	}
	assertEncrypted(t, key)
	assertSHA256Tags(t, key, data)
	assertNothingLeft(t, temp)
}

// TestTusTemporaryObjectsAndMaxSize: what an unfinished upload keeps in
// S3 besides its parts (here the tail of bytes short of a part) is
// SSE-KMS encrypted like the
// upload; and with the length deferred, a chunked PATCH cannot take the
// upload past max_size: it gets 413 with the bytes up to it kept.
func TestTusTemporaryObjectsAndMaxSize(t *testing.T) {
	// arrange
	gws, _, temp := tusGateways(t, 1, "max_size 6MiB")
	gw := gws[0]
	created := tusRequest(t, gw, http.MethodPost, gw.URL+"/tus/", nil, "Upload-Defer-Length", "1")
	if created.StatusCode != http.StatusCreated {
		t.Fatalf("creation: %d", created.StatusCode)
	}
	url := gw.URL + created.Header.Get("Location")
	data := fileBytes(t, pdfMagic, 21, 12*mib)

	// act: 1 MiB (a tail), then the rest chunked, beyond max_size
	if resp := tusRequest(t, gw, http.MethodPatch, url, data[:mib], "Upload-Offset", "0"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first PATCH: %d", resp.StatusCode)
	}
	_, objects, err := env.Leftovers(context.Background(), temp)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(objects, func(k string) bool { return strings.Contains(k, "/tail-") }) {
		t.Fatalf("temporary objects %v, want the tail", objects)
	}
	for _, key := range objects {
		assertEncrypted(t, key)
	}
	t.Logf("temporary objects after 1 MiB: %d, all SSE-KMS", len(objects))
	req, _ := http.NewRequest(http.MethodPatch, url, io.MultiReader(bytes.NewReader(data[mib:]))) // no length: chunked
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", basicAuth("alice"))
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.Itoa(mib))
	resp, err := gw.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	// assert
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked PATCH past max_size: %d %s, want 413", resp.StatusCode, body)
	}
	if got := tusHead(t, gw, url, "alice").Header.Get("Upload-Offset"); got != strconv.Itoa(6*mib) {
		t.Errorf("offset after the refused PATCH: %s, want %d (max_size)", got, 6*mib)
	}
	if resp := tusRequest(t, gw, http.MethodDelete, url, nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("termination: %d", resp.StatusCode)
	}
	assertNothingLeft(t, temp)
}
