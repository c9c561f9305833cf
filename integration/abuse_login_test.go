//go:build integration

package integration_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
)

// trustLoopbackProxy makes the gateway take the client address from
// X-Forwarded-For on requests from 127.0.0.1, as an operator does for the
// load balancer in front of it, so that a test can play many clients.
const trustLoopbackProxy = `servers {
		trusted_proxies static 127.0.0.1/32
		trusted_proxies_strict
	}`

// idpUser is an account of a local identity provider's users file.
type idpUser struct {
	email, password string
	groups          []string
	generation      int
}

var (
	hashMu    sync.Mutex
	hashCache = map[string]string{}
)

// writeUsersFile writes the users file at path (mode 0600) the way an
// operator should: to a new file renamed over the old one.
func writeUsersFile(t *testing.T, path string, users ...idpUser) {
	t.Helper()
	type entry struct {
		Email           string   `json:"email"`
		PasswordHash    string   `json:"password_hash"`
		Groups          []string `json:"groups,omitempty"`
		TokenGeneration int      `json:"token_generation,omitempty"`
	}
	var entries []entry
	for _, u := range users {
		hashMu.Lock()
		h, ok := hashCache[u.password]
		if !ok {
			b, err := bcrypt.GenerateFromPassword([]byte(u.password), localidp.MinHashCost)
			if err != nil {
				hashMu.Unlock()
				t.Fatal(err)
			}
			h = string(b)
			hashCache[u.password] = h
		}
		hashMu.Unlock()
		entries = append(entries, entry{u.email, h, u.groups, u.generation})
	}
	data, _ := json.Marshal(map[string]any{"users": entries})
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// localIdP is the state of a local identity provider on disk.
type localIdP struct {
	usersFile, keysDir string
}

// newLocalIdP writes a users file with users into a new private directory.
func newLocalIdP(t *testing.T, users ...idpUser) localIdP {
	t.Helper()
	dir := t.TempDir()
	idp := localIdP{usersFile: filepath.Join(dir, "users.json"), keysDir: filepath.Join(dir, "keys")}
	writeUsersFile(t, idp.usersFile, users...)
	return idp
}

// site returns an upload_auth block for idp with extra subdirectives,
// followed by rest (what authenticated requests reach).
func (idp localIdP) site(authLines []string, rest string) string {
	return idp.siteWith(nil, authLines, rest)
}

// siteWith is site with more lines in the local block.
func (idp localIdP) siteWith(localLines, authLines []string, rest string) string {
	return fmt.Sprintf(`upload_auth {
		local {
			users_file %s
			keys_dir %s
			issuer https://edge.example.com
			%s
		}
		%s
	}
	%s`, idp.usersFile, idp.keysDir, strings.Join(localLines, "\n\t\t\t"), strings.Join(authLines, "\n\t\t"), rest)
}

// attempt is the outcome of one request made from a goroutine, where
// t.Fatal may not be called.
type attempt struct {
	status     int
	code       string
	retryAfter string
	took       time.Duration
	err        error
	at         time.Time
}

// postFrom posts body as JSON to url as the client at address from (sent
// as X-Forwarded-For; "" for none). It does not fail the test.
func postFrom(client *http.Client, url, from string, body any) (attempt, loginResult) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if from != "" {
		req.Header.Set("X-Forwarded-For", from)
	}
	start := time.Now()
	resp, err := client.Do(req)
	a := attempt{took: time.Since(start), err: err, at: time.Now()}
	var r loginResult
	if err != nil {
		return a, r
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a.took = time.Since(start)
	a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	r.status, r.header = resp.StatusCode, resp.Header
	if err := json.Unmarshal(raw, &r.body); err != nil {
		a.err = fmt.Errorf("response %d is not JSON: %q", resp.StatusCode, raw)
	}
	a.code = r.body.Error.Code
	return a, r
}

// loginFrom signs in as the client at address from and fails the test on a
// transport error.
func loginFrom(t *testing.T, gw *harness.Gateway, from, email, password string) loginResult {
	t.Helper()
	a, r := postFrom(gw.Client, gw.URL+"/auth/login", from, map[string]string{"email": email, "password": password})
	if a.err != nil {
		t.Fatal(a.err)
	}
	return r
}

// An attacker sends sign-ins with enormous made-up emails. Each is refused
// with 400 before any limiter stores it, so the gateway's memory does not
// grow with them and the attacker's own address is not even charged: the
// real user behind the same address still signs in.
func TestAbuseLoginHugeEmailsRefusedBeforeLimiting(t *testing.T) {
	idp := newLocalIdP(t, idpUser{email: "edge@example.com", password: "edge-password", groups: []string{"uploader"}})
	gw := startGatewayWith(t, harness.GatewayConfig{
		Site:    idp.site([]string{"login_per_ip 5"}, `respond "hello" 200`),
		Globals: trustLoopbackProxy,
	})
	rssBefore, _ := gw.RSS()

	const attempts = 300
	var refused, other int
	for i := range attempts {
		email := fmt.Sprintf("%d-%s@example.com", i, strings.Repeat("x", 15<<10))
		a, _ := postFrom(gw.Client, gw.URL+"/auth/login", "203.0.113.9", map[string]string{"email": email, "password": "guess"})
		if a.err != nil {
			t.Fatal(a.err)
		}
		if a.status == http.StatusBadRequest && a.code == "BAD_REQUEST" {
			refused++
		} else {
			other++
		}
	}
	if refused != attempts {
		t.Errorf("%d of %d huge emails refused with 400 BAD_REQUEST, %d got something else", refused, attempts, other)
	}
	// 254 bytes is the longest address there is; one byte more is refused.
	long := strings.Repeat("a", 255-len("@example.com")) + "@example.com"
	if r := loginFrom(t, gw, "203.0.113.9", long, "guess"); r.status != http.StatusBadRequest {
		t.Errorf("a 255-byte email: %d %+v, want 400", r.status, r.body.Error)
	}

	// 300 requests from this address and login_per_ip 5: none of them was
	// charged, so the address may still sign in.
	r := loginFrom(t, gw, "203.0.113.9", "edge@example.com", "edge-password")
	if r.status != http.StatusOK || r.body.Data.Token == "" {
		t.Fatalf("the real user behind the attacker's address: %d %+v", r.status, r.body.Error)
	}
	if rssAfter, err := gw.RSS(); err == nil && rssBefore > 0 {
		t.Logf("RSS %d MiB before, %d MiB after %d huge-email logins", rssBefore>>20, rssAfter>>20, attempts)
		if rssAfter-rssBefore > 64<<20 {
			t.Errorf("RSS grew by %d MiB over %d refused logins", (rssAfter-rssBefore)>>20, attempts)
		}
	}
}

// Many addresses flood the sign-in endpoint at once with password guesses.
// Password checks (bcrypt) run one at a time (login_concurrency 1); the
// excess is answered at once with 503 and Retry-After instead of queueing,
// and each address's limit (10 a minute) soon answers 429. A real user,
// signing in from another address during the flood and retrying as
// Retry-After says, gets in while the flood is still going.
//
// No gateway can tell a botnet's guesses from real sign-ins, so the user
// gets in once the attackers' per-address allowances are spent; what the
// cap guarantees is that the excess costs no CPU and no waiting.
func TestAbuseLoginFloodIsCappedAndUserStillSignsIn(t *testing.T) {
	idp := newLocalIdP(t, idpUser{email: "edge@example.com", password: "edge-password", groups: []string{"uploader"}})
	gw := startGatewayWith(t, harness.GatewayConfig{
		Site:    idp.site([]string{"login_concurrency 1", "login_per_ip 10"}, `respond "hello" 200`),
		Globals: trustLoopbackProxy,
	})

	const (
		attackers   = 16
		maxAttempts = 300 // each attacker stops after this many requests, or at stop
		floodFor    = 6 * time.Second
	)
	stop := time.Now().Add(floodFor)
	var (
		mu      sync.Mutex
		results []attempt
		wg      sync.WaitGroup
	)
	for i := range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := fmt.Sprintf("203.0.113.%d", i+1)
			for n := 0; n < maxAttempts && time.Now().Before(stop); n++ {
				email := fmt.Sprintf("guess-%d-%d@example.com", i, n)
				a, _ := postFrom(gw.Client, gw.URL+"/auth/login", from, map[string]string{"email": email, "password": "hunter2"})
				mu.Lock()
				results = append(results, a)
				mu.Unlock()
				if a.status == http.StatusTooManyRequests {
					time.Sleep(50 * time.Millisecond) // keep hammering, a little politely
				}
			}
		}()
	}

	// The real user, from elsewhere, once the flood is under way.
	time.Sleep(300 * time.Millisecond)
	var signedIn loginResult
	var signedInAt time.Time
	tries := 0
	var userSaw []string
	for tries < 20 && time.Now().Before(stop) {
		tries++
		a, r := postFrom(gw.Client, gw.URL+"/auth/login", "192.0.2.50", map[string]string{"email": "edge@example.com", "password": "edge-password"})
		if a.err != nil {
			t.Fatal(a.err)
		}
		userSaw = append(userSaw, fmt.Sprintf("%d after %v", a.status, a.took.Round(time.Millisecond)))
		if a.status == http.StatusOK {
			signedIn, signedInAt = r, a.at
			break
		}
		if a.status != http.StatusServiceUnavailable {
			t.Fatalf("the user's sign-in during the flood: %d %s", a.status, a.code)
		}
		wait, err := strconv.Atoi(a.retryAfter)
		if err != nil || wait < 1 {
			t.Fatalf("503 with Retry-After %q", a.retryAfter)
		}
		time.Sleep(time.Duration(wait) * time.Second / 4) // an eager client; still bounded
	}
	wg.Wait()

	if signedIn.status != http.StatusOK || signedIn.body.Data.Token == "" {
		t.Fatalf("the user did not get in during the flood after %d tries: %v", tries, userSaw)
	}
	if !signedInAt.Before(stop) {
		t.Errorf("the user got in at %v, after the flood ended at %v", signedInAt, stop)
	}

	count := map[int]int{}
	var refusedTook []time.Duration
	for _, a := range results {
		if a.err != nil {
			t.Fatalf("flood request failed: %v", a.err)
		}
		count[a.status]++
		switch a.status {
		case http.StatusServiceUnavailable:
			if a.code != "LOGIN_BUSY" || a.retryAfter == "" {
				t.Errorf("503 with code %q and Retry-After %q", a.code, a.retryAfter)
			}
			refusedTook = append(refusedTook, a.took)
		case http.StatusTooManyRequests:
			refusedTook = append(refusedTook, a.took)
		case http.StatusUnauthorized:
		default:
			t.Errorf("flood request answered %d %s", a.status, a.code)
		}
	}
	slices.Sort(refusedTook)
	t.Logf("flood of %d requests from %d addresses: %d checked (401), %d busy (503), %d rate limited (429); the user saw %v",
		len(results), attackers, count[http.StatusUnauthorized], count[http.StatusServiceUnavailable], count[http.StatusTooManyRequests], userSaw)
	if count[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no 503: the password check cap never engaged")
	}
	if len(refusedTook) > 0 {
		median, worst := refusedTook[len(refusedTook)/2], refusedTook[len(refusedTook)-1]
		t.Logf("refusals answered in %v (median), %v (slowest)", median, worst)
		// A refused attempt waits at most one second for a check slot.
		if median > 500*time.Millisecond || worst > 3*time.Second {
			t.Errorf("refusals took %v (median), %v (slowest); want them fast", median, worst)
		}
	}
}

// An attacker who knows a user's email hammers it with guesses from one
// address. Their attempts are cut off after login_per_account, but the
// user, from their own address, signs in at once: the attacker cannot lock
// the account.
func TestAbuseLoginAttackerCannotLockOutUser(t *testing.T) {
	prefix := testPrefix(t)
	idp := newLocalIdP(t, idpUser{email: "victim@example.com", password: "victim-password", groups: []string{"uploader"}})
	gw := startGatewayWith(t, harness.GatewayConfig{
		Site: idp.site([]string{"login_per_account 3", "login_per_ip 100", "role_arn uploader arn:aws:iam::123456789012:role/Uploader"},
			gatewayOpts{prefix: prefix, lines: []string{"allowed_roles uploader"}}.block()),
		Globals: trustLoopbackProxy,
	})

	count := map[int]int{}
	for range 25 {
		r := loginFrom(t, gw, "203.0.113.66", "victim@example.com", "password123")
		count[r.status]++
	}
	if count[http.StatusUnauthorized] != 3 || count[http.StatusTooManyRequests] != 22 {
		t.Errorf("attacker's 25 guesses: %v, want 3 checked and 22 refused with 429", count)
	}

	r := loginFrom(t, gw, "192.0.2.77", "victim@example.com", "victim-password")
	if r.status != http.StatusOK || r.body.Data.Token == "" {
		t.Fatalf("the user signing in from their own address after the attack: %d %+v", r.status, r.body.Error)
	}
	// The login response does not show the role's ARN unless configured.
	if arn := r.body.Data.User.Role.RoleARN; arn != "" || r.body.Data.User.Role.Role != "uploader" {
		t.Errorf("login role = %+v, want uploader without roleArn (expose_role_arn is off)", r.body.Data.User.Role)
	}
	resp := putWithToken(t, gw.Client, gw.URL+"/after-attack.txt", r.body.Data.Token)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("the user's upload after the attack: %d", resp.StatusCode)
	}

	// The attacker's own address stays cut off, even with the right
	// password (they might have guessed it since).
	if r := loginFrom(t, gw, "203.0.113.66", "victim@example.com", "victim-password"); r.status != http.StatusTooManyRequests {
		t.Errorf("the attacker's address with the right password: %d, want 429", r.status)
	}
}

// Without trusted_proxies (the default), X-Forwarded-For is the client's
// own claim and is ignored: an attacker who makes up a new address for
// every attempt is still limited as the one address they connect from.
func TestAbuseLoginForgedForwardedForIsIgnored(t *testing.T) {
	idp := newLocalIdP(t, idpUser{email: "edge@example.com", password: "edge-password"})
	gw := startGatewayWith(t, harness.GatewayConfig{Site: idp.site([]string{"login_per_ip 5"}, `respond "hello" 200`)})

	limited := 0
	for i := range 20 {
		r := loginFrom(t, gw, fmt.Sprintf("198.51.100.%d", i+1), fmt.Sprintf("guess%d@example.com", i), "x")
		if r.status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 15 {
		t.Errorf("%d of 20 attempts with forged X-Forwarded-For limited, want 15 (after login_per_ip 5)", limited)
	}
}

// Only a real CORS preflight passes upload_auth without a token. Any other
// OPTIONS request (no preflight headers, or a body) is refused with 401
// and never reaches the backend behind the gateway.
func TestOptionsNeedATokenUnlessCORSPreflight(t *testing.T) {
	var reached atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer backend.Close()
	idp := newLocalIdP(t, idpUser{email: "edge@example.com", password: "edge-password", groups: []string{"uploader"}})
	gw := startGatewayWith(t, harness.GatewayConfig{Site: idp.site(nil, "reverse_proxy "+backend.URL)})
	token := loginFrom(t, gw, "", "edge@example.com", "edge-password").body.Data.Token

	preflight := map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"}
	tests := []struct {
		name        string
		header      map[string]string
		body        string
		token       string
		want        int
		wantBackend bool
	}{
		{"CORS preflight passes", preflight, "", "", http.StatusNoContent, true},
		{"bare OPTIONS is refused", nil, "", "", http.StatusUnauthorized, false},
		{"OPTIONS with Origin only is refused", map[string]string{"Origin": "https://app.example.com"}, "", "", http.StatusUnauthorized, false},
		{"preflight headers with a body are refused", preflight, `{"delete":"everything"}`, "", http.StatusUnauthorized, false},
		{"OPTIONS with a valid token passes", nil, "", token, http.StatusNoContent, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := reached.Load()
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, _ := http.NewRequest(http.MethodOptions, gw.URL+"/api/things", body)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := gw.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if got := reached.Load() > before; got != tt.wantBackend {
				t.Errorf("reached the backend: %v, want %v", got, tt.wantBackend)
			}
		})
	}

	// Browsers often speak HTTP/3 to Caddy, where a preflight has no
	// Content-Length; it still passes, and a body still does not.
	h3 := &http.Client{Transport: &http3.Transport{TLSClientConfig: gw.Client.Transport.(*http.Transport).TLSClientConfig}}
	defer h3.Transport.(*http3.Transport).Close()
	for _, tt := range []struct {
		name string
		body io.Reader
		want int
	}{
		{"CORS preflight over HTTP/3 passes", nil, http.StatusNoContent},
		{"preflight headers with a body over HTTP/3 are refused", strings.NewReader("smuggled"), http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodOptions, gw.URL+"/api/things", tt.body)
			req.ContentLength = -1 // send no Content-Length
			for k, v := range preflight {
				req.Header.Set(k, v)
			}
			resp, err := h3.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != 3 || resp.StatusCode != tt.want {
				t.Errorf("%s: status %d, want %d", resp.Proto, resp.StatusCode, tt.want)
			}
		})
	}
}
