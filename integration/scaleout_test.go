//go:build integration

package integration_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// cluster is three gateway instances started from one Caddyfile, behind a
// fourth Caddy that balances round-robin across them. The instances share
// what an operator shares: the file API's upload-token secret, the local
// identity provider's users file and keys directory, and Caddy's storage
// (so one internal CA and one certificate serve all of them). Each answers
// with its name in X-Served-By.
type cluster struct {
	nodes    []*harness.Gateway // A, B, C
	lb       *harness.Gateway
	keysDir  string
	streamed string // upload_gateway's prefix, swept by every janitor
}

var nodeNames = []string{"A", "B", "C"}

const (
	scaleoutEmail    = "ana@example.com"
	scaleoutPassword = "ana-scaleout-password"
)

func startCluster(t *testing.T, prefix string) *cluster {
	t.Helper()
	storage := t.TempDir()
	idp := newLocalIdP(t, idpUser{email: scaleoutEmail, password: scaleoutPassword, groups: []string{"uploader"}})
	c := &cluster{keysDir: idp.keysDir, streamed: prefix + "streamed/"}
	site := fmt.Sprintf(`header X-Served-By {env.UGW_INSTANCE}
	handle /up/* {
		upload_gateway {
			allow_anonymous
			%s
			prefix %s
			part_size 5MiB
			max_uploads_per_client 100
			janitor {
				max_age 1m
				interval 3s
			}
		}
	}
	handle {
		%s
	}`, harness.S3Settings(""), c.streamed, idp.site(nil, fmt.Sprintf(`upload_api {
			%s
			prefix %sapi/
			base_path /api
			secret {env.UGW_SCALEOUT_SECRET}
			part_size 5MiB
		}`, harness.S3Settings(""), prefix)))
	for _, name := range nodeNames {
		c.nodes = append(c.nodes, startGatewayWith(t, harness.GatewayConfig{
			Site:       site,
			StorageDir: storage,
			Env:        []string{"UGW_INSTANCE=" + name, "UGW_SCALEOUT_SECRET=scale-out-secret-shared-by-every-instance"},
		}))
	}
	var upstreams []string
	for _, n := range c.nodes {
		upstreams = append(upstreams, n.URL)
	}
	c.lb = startGatewayWith(t, harness.GatewayConfig{StorageDir: storage, Site: fmt.Sprintf(`reverse_proxy %s {
		lb_policy round_robin
		lb_try_duration 5s
		lb_try_interval 100ms
		fail_duration 2s
		transport http {
			tls_trust_pool file %s
			tls_server_name 127.0.0.1
		}
	}`, strings.Join(upstreams, " "), c.nodes[0].RootCAFile())})
	return c
}

// stored is one streamed upload the client was told succeeded: the key
// and checksum the gateway answered, and the SHA-256 of what it sent.
type stored struct {
	key, crc32c, servedBy string
	sha256                string
	size                  int64
}

// put streams n bytes of body to base/up/name and returns what the
// gateway answered; err is a transport error or a non-201 answer.
func put(ctx context.Context, client *http.Client, base, name string, body io.Reader, n int64) (stored, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/up/"+name, body)
	if err != nil {
		return stored{}, err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := client.Do(req)
	if err != nil {
		return stored{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r apiResponse
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &r) != nil || !r.Success || len(r.Data.Files) != 1 {
		return stored{servedBy: resp.Header.Get("X-Served-By")}, fmt.Errorf("status %d from %q: %.200s", resp.StatusCode, resp.Header.Get("X-Served-By"), raw)
	}
	f := r.Data.Files[0]
	return stored{key: f.S3Key, crc32c: f.Checksum, size: f.Size, servedBy: resp.Header.Get("X-Served-By")}, nil
}

// heldBody sends the first bytes of a random body, then waits for release
// before sending the rest.
func heldBody(seed uint64, n, first int64, release <-chan struct{}) (io.Reader, *harness.RandomReader) {
	src := harness.NewRandomReader(seed, n)
	rest := io.LimitReader(src, n-first)
	return io.MultiReader(io.LimitReader(src, first), readerFunc(func(p []byte) (int, error) {
		<-release
		return rest.Read(p)
	})), src
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// multipartUploads lists the multipart uploads in progress under prefix.
func multipartUploads(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := env.S3().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &env.Bucket, Prefix: &prefix})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	var ids []string
	for _, u := range out.Uploads {
		ids = append(ids, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
	}
	return ids
}

// waitForUploads waits until the number of multipart uploads under prefix
// satisfies ok, and returns the last count.
func waitForUploads(t *testing.T, prefix string, timeout time.Duration, ok func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := len(multipartUploads(t, prefix))
		if ok(n) || time.Now().After(deadline) {
			return n
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// metricOr0 reads a counter from a gateway's /metrics, 0 when absent.
func metricOr0(t *testing.T, gw *harness.Gateway, series string) float64 {
	t.Helper()
	resp, err := http.Get(gw.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// assertStored downloads each object the client was told about and checks
// its SHA-256.
func assertStored(t *testing.T, told []stored) {
	t.Helper()
	for _, s := range told {
		if got, n := objectSHA256(t, s.key); got != s.sha256 || n != s.size {
			t.Errorf("%s: stored %d bytes with SHA-256 %s, the client was told %d bytes %s", s.key, n, got, s.size, s.sha256)
		}
	}
}

// kidOf returns the key id in a JWT's header.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	head, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	var h struct {
		Kid string `json:"kid"`
	}
	if err != nil || json.Unmarshal(head, &h) != nil || h.Kid == "" {
		t.Fatalf("token header %q: %v", head, err)
	}
	return h.Kid
}

// An operator outgrows one machine and runs three gateway instances, A, B
// and C, from the same Caddyfile behind a load balancer. Nothing a client
// does depends on which instance answers: a multipart upload can be
// started on one and finished on another, a token issued by one is good
// on all, a signing key rotated on one is used by all. When an instance
// crashes, only the uploads it was serving fail, and they fail visibly;
// the survivors' janitors abort what it left in S3. A rolling restart of
// all three under traffic loses nothing a client was told was stored.
func TestThreeInstancesBehindALoadBalancer(t *testing.T) {
	if testing.Short() {
		t.Skip("waits twice for the janitor's one-minute minimum age")
	}
	prefix := testPrefix(t)
	c := startCluster(t, prefix)
	a, b, cc := c.nodes[0], c.nodes[1], c.nodes[2]
	earlier := map[string]bool{} // objects stored before the rolling restart
	signIn := func(t *testing.T, gw *harness.Gateway) string {
		t.Helper()
		l := login(t, gw.Client, gw.URL, scaleoutEmail, scaleoutPassword)
		if l.status != http.StatusOK || l.body.Data.Token == "" {
			t.Fatalf("login on %s: %d %+v", gw.URL, l.status, l.body)
		}
		return l.body.Data.Token
	}

	t.Run("a multipart upload is initiated on A, its parts signed on B and completed on C", func(t *testing.T) {
		token := signIn(t, a)
		on := func(gw *harness.Gateway) *apiClient { return &apiClient{t: t, gw: gw, token: token} }
		const partSize = 5 * mib
		data := fileBytes(t, pdfMagic, 151, 2*partSize+777)
		var in initiated
		if status, code := on(a).call("POST", "/files/multipart/initiate", map[string]any{
			"fileName": "across-instances.pdf", "fileSize": len(data), "contentType": "application/pdf", "partSize": partSize,
		}, &in); status != http.StatusOK || in.TotalParts != 3 {
			t.Fatalf("initiate on A: %d %s %+v", status, code, in)
		}
		var signed struct {
			PartURLs []partURL `json:"partUrls"`
		}
		if status, code := on(b).call("POST", "/files/multipart/sign-parts", map[string]any{
			"fileId": in.FileID, "uploadId": in.UploadID, "uploadToken": in.UploadToken, "partNumbers": []int{1, 2, 3},
		}, &signed); status != http.StatusOK || len(signed.PartURLs) != 3 {
			t.Fatalf("sign-parts on B: %d %s %d URLs", status, code, len(signed.PartURLs))
		}
		for i, p := range signed.PartURLs {
			part := data[i*partSize : min((i+1)*partSize, len(data))]
			if status, body := send(t, "PUT", p.URL, p.Headers, part); status != http.StatusOK {
				t.Fatalf("part %d signed by B: %d %s", p.PartNumber, status, body)
			}
		}
		var done struct {
			S3Key string `json:"s3Key"`
			Size  int64  `json:"size"`
		}
		if status, code := on(cc).call("POST", "/files/multipart/complete", map[string]any{
			"fileId": in.FileID, "uploadId": in.UploadID, "uploadToken": in.UploadToken,
		}, &done); status != http.StatusOK {
			t.Fatalf("complete on C: %d %s", status, code)
		}
		if got, n := objectSHA256(t, done.S3Key); got != fmt.Sprintf("%x", sha256.Sum256(data)) || n != int64(len(data)) {
			t.Errorf("object %s: %d bytes, SHA-256 %s", done.S3Key, n, got)
		}
		assertEncrypted(t, done.S3Key)
	})

	t.Run("a token from A is good on B and C, and a key rotated on B is used by all", func(t *testing.T) {
		accepted := func(gw *harness.Gateway, token string) bool {
			status, code := (&apiClient{t: t, gw: gw, token: token}).call("POST", "/files/upload-url", map[string]any{
				"fileName": "probe.pdf", "fileSize": 10, "contentType": "application/pdf",
			}, nil)
			if status != http.StatusOK && status != http.StatusUnauthorized {
				t.Fatalf("upload-url on %s: %d %s", gw.URL, status, code)
			}
			return status == http.StatusOK
		}
		before := signIn(t, a)
		oldKid := kidOf(t, before)
		for i, gw := range c.nodes {
			if !accepted(gw, before) {
				t.Errorf("the token A issued is refused by %s", nodeNames[i])
			}
		}

		bin, err := harness.BuildGateway()
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "upload-gateway-rotate-key", "--keys-dir", c.keysDir).CombinedOutput()
		newKid, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "new signing key: ")
		if err != nil || !ok {
			t.Fatalf("upload-gateway-rotate-key: %v: %s", err, out)
		}
		// Each instance re-reads the shared directory at most once a
		// second; sign-ins are limited per instance, so poll gently.
		var after string
		for range 4 {
			time.Sleep(1100 * time.Millisecond)
			if after = signIn(t, b); kidOf(t, after) == newKid {
				break
			}
		}
		if got := kidOf(t, after); got != newKid || got == oldKid {
			t.Fatalf("B signs with %s after the rotation, want the new key %s (old %s)", got, newKid, oldKid)
		}
		for i, gw := range c.nodes {
			if !accepted(gw, after) {
				t.Errorf("the token B signed with the new key is refused by %s", nodeNames[i])
			}
			if !accepted(gw, before) {
				t.Errorf("the token A signed before the rotation is refused by %s", nodeNames[i])
			}
		}
		if got := kidOf(t, signIn(t, cc)); got != newKid {
			t.Errorf("C signs with %s after the rotation, want %s", got, newKid)
		}
	})

	t.Run("when B is killed mid-upload only its uploads fail and the janitor aborts what it left", func(t *testing.T) {
		const n, first, clients = 12 * mib, 6 * mib, 6
		release := make(chan struct{})
		type result struct {
			s   stored
			err error
			src *harness.RandomReader
		}
		results := make([]result, clients)
		var wg sync.WaitGroup
		for i := range clients {
			body, src := heldBody(uint64(300+i), n, first, release)
			results[i].src = src
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				results[i].s, results[i].err = put(ctx, c.lb.Client, c.lb.URL, fmt.Sprintf("crash-%d.bin", i), body, n)
			}()
			time.Sleep(50 * time.Millisecond) // in order, so that round-robin deals two to each
		}
		if got := waitForUploads(t, c.streamed, 30*time.Second, func(k int) bool { return k == clients }); got != clients {
			close(release)
			wg.Wait()
			t.Fatalf("%d multipart uploads in progress, want %d", got, clients)
		}
		b.Kill()
		close(release)
		wg.Wait()

		var told []stored
		failed := 0
		for i, r := range results {
			switch {
			case r.err != nil:
				failed++
				t.Logf("upload %d failed for the client, as it should if B had it: %v", i, r.err)
			case r.s.servedBy == "B":
				t.Errorf("upload %d reports success from the killed instance B: %+v", i, r.s)
			case r.s.crc32c != r.src.CRC32C() || r.s.size != n:
				t.Errorf("upload %d: the gateway stored %d bytes with CRC32C %s, the client sent %d bytes %s", i, r.s.size, r.s.crc32c, n, r.src.CRC32C())
			default:
				r.s.sha256 = r.src.SHA256()
				told = append(told, r.s)
			}
		}
		if failed == 0 || failed == clients {
			t.Fatalf("%d of %d uploads failed; want those B had (about a third)", failed, clients)
		}
		assertStored(t, told)
		for _, s := range told {
			earlier[s.key] = true
		}
		left := waitForUploads(t, c.streamed, 10*time.Second, func(k int) bool { return k == failed })
		if left != failed {
			t.Errorf("%d multipart uploads left after the crash, want %d (one per failed upload)", left, failed)
		}
		start := time.Now()
		if got := waitForUploads(t, c.streamed, 100*time.Second, func(k int) bool { return k == 0 }); got != 0 {
			t.Fatalf("the survivors' janitors left %d orphans: %v", got, multipartUploads(t, c.streamed))
		}
		series := `upload_gateway_orphans_aborted_total{prefix="` + c.streamed + `"}`
		aborted := metricOr0(t, a, series) + metricOr0(t, cc, series)
		if aborted < float64(left) {
			t.Errorf("A and C report %v orphans aborted, want at least %d", aborted, left)
		}
		t.Logf("B killed with %d of %d uploads: %d stored through A and C, %d failed for the client; %d orphans aborted by the survivors after %s",
			failed, clients, len(told), failed, int(aborted), time.Since(start).Round(time.Second))
		if err := b.Restart(); err != nil {
			t.Fatalf("restarting B: %v", err)
		}
	})

	t.Run("a rolling restart under a stream of uploads loses nothing and leaves no orphans", func(t *testing.T) {
		if b.Stopped() {
			t.Fatal("B is not running")
		}
		const workers, maxUploads, attempts = 4, 400, 10
		var (
			mu       sync.Mutex
			told     []stored
			failures []string
			retries  int
			started  int
			servedBy = map[string]int{}
			inFlight atomic.Int32
		)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					mu.Lock()
					if started == maxUploads {
						mu.Unlock()
						return
					}
					started++
					id := started
					mu.Unlock()
					size := int64(64<<10 + rand.N(6*mib))
					var lastErr error
					for try := range attempts {
						src := harness.NewRandomReader(uint64(1000*w+id), size)
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						inFlight.Add(1)
						s, err := put(ctx, c.lb.Client, c.lb.URL, fmt.Sprintf("rolling-%d.bin", id), src, size)
						inFlight.Add(-1)
						cancel()
						mu.Lock()
						if err == nil && s.crc32c == src.CRC32C() && s.size == size {
							s.sha256 = src.SHA256()
							told = append(told, s)
							servedBy[s.servedBy]++
							mu.Unlock()
							lastErr = nil
							break
						}
						if err == nil {
							err = fmt.Errorf("told %d bytes CRC32C %s, sent %d bytes %s", s.size, s.crc32c, size, src.CRC32C())
						}
						lastErr = err
						if try < attempts-1 {
							retries++
						}
						mu.Unlock()
						time.Sleep(200 * time.Millisecond)
					}
					if lastErr != nil {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("upload %d: %v", id, lastErr))
						mu.Unlock()
					}
				}
			}()
		}
		start := time.Now()
		time.Sleep(time.Second)
		var atShutdown []int32
		for i, gw := range c.nodes {
			atShutdown = append(atShutdown, inFlight.Load())
			gw.Shutdown()
			if err := gw.Restart(); err != nil {
				close(stop)
				wg.Wait()
				t.Fatalf("restarting %s: %v", nodeNames[i], err)
			}
			time.Sleep(time.Second)
		}
		close(stop)
		wg.Wait()
		took := time.Since(start)

		t.Logf("rolling restart in %s: uploads in flight at each SIGTERM %v; %d uploads stored (by instance %v), %d retried attempts, %d reported failures",
			took.Round(100*time.Millisecond), atShutdown, len(told), servedBy, retries, len(failures))
		if slices.Contains(atShutdown, 0) {
			t.Errorf("uploads in flight when each instance was stopped: %v; the restart was not under traffic", atShutdown)
		}
		for _, f := range failures {
			t.Logf("reported failure: %s", f)
		}
		if len(told) == 0 || len(servedBy) != 3 {
			t.Errorf("uploads stored per instance: %v, want some on each", servedBy)
		}
		if len(failures) > len(told)/10 {
			t.Errorf("%d uploads failed after %d attempts each; retrying clients should get through a rolling restart", len(failures), attempts)
		}
		assertStored(t, told)

		keys := map[string]bool{}
		for _, s := range told {
			keys[s.key] = true
		}
		_, objects, err := env.Leftovers(context.Background(), c.streamed)
		if err != nil {
			t.Fatal(err)
		}
		extra := 0
		for _, k := range objects {
			if !keys[k] && !earlier[k] {
				extra++
			}
		}
		if extra > 0 {
			t.Logf("%d objects were stored for attempts the client was told failed (it retried them)", extra)
		}
		if got := waitForUploads(t, c.streamed, 100*time.Second, func(k int) bool { return k == 0 }); got != 0 {
			t.Errorf("%d orphaned multipart uploads after the janitor ran: %v", got, multipartUploads(t, c.streamed))
		}
		fmt.Printf("MEASURED scaleout-rolling-restart stored=%d retries=%d failures=%d extra_objects=%d seconds=%.1f\n",
			len(told), retries, len(failures), extra, took.Seconds())
	})
}

// Sign-in limits are counted per instance, so three instances behind a
// balancer would allow three times login_per_account_total. With
// login_per_account_global the count is kept in the storage the instances
// share, and the limit holds whichever instance an attempt reaches.
func TestGlobalLoginLimitHoldsAcrossInstances(t *testing.T) {
	storage := t.TempDir()
	idp := newLocalIdP(t, idpUser{email: scaleoutEmail, password: scaleoutPassword, groups: []string{"uploader"}})
	start := func(lines ...string) (*harness.Gateway, *harness.Gateway) {
		site := idp.site(lines, `respond "ok"`)
		a := startGatewayWith(t, harness.GatewayConfig{Site: site, StorageDir: storage})
		b := startGatewayWith(t, harness.GatewayConfig{Site: site, StorageDir: storage})
		return a, b
	}
	// wrongGuesses alternates bad passwords between a and b and returns
	// the statuses.
	wrongGuesses := func(a, b *harness.Gateway, n int) []int {
		var got []int
		for i := range n {
			gw := []*harness.Gateway{a, b}[i%2]
			got = append(got, login(t, gw.Client, gw.URL, scaleoutEmail, fmt.Sprintf("guess-%d", i)).status)
		}
		return got
	}
	const limit = 4
	t.Run("per-instance limits let N times as many guesses through", func(t *testing.T) {
		a, b := start(fmt.Sprintf("login_per_account_total %d", limit))
		got := wrongGuesses(a, b, 2*limit)
		for i, s := range got {
			if s != http.StatusUnauthorized {
				t.Errorf("guess %d: %d, want 401 (each instance counts only its own %d)", i+1, s, limit)
			}
		}
	})
	t.Run("the global limit holds across instances", func(t *testing.T) {
		a, b := start(fmt.Sprintf("login_per_account_global %d", limit))
		got := wrongGuesses(a, b, limit+2)
		for i, s := range got {
			want := http.StatusUnauthorized
			if i >= limit {
				want = http.StatusTooManyRequests
			}
			if s != want {
				t.Errorf("guess %d on %s: %d, want %d (statuses %v)", i+1, []string{"A", "B"}[i%2], s, want, got)
			}
		}
		// Another account is not affected.
		if s := login(t, a.Client, a.URL, "nobody@example.com", "x").status; s != http.StatusUnauthorized {
			t.Errorf("another account: %d, want 401", s)
		}
	})
}
