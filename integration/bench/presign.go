package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
)

// presignResult is one row of the presign table.
type presignResult struct {
	path          string
	requests      int
	errors        int
	reqPerSec     float64
	p50, p90, p99 time.Duration
}

// benchPresign measures POST /api/files/upload-url through the gateway:
// bearer-token validation, policy, cached STS credentials and SigV4
// presigning, with conc clients on keep-alive connections for d.
func benchPresign(env *harness.Env, d time.Duration, conc int) ([]presignResult, error) {
	dir, err := benchUserDir("ugw-bench-idp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	site := fmt.Sprintf(`upload_auth {
		local {
			users_file %s
			keys_dir %s
		}
	}
	upload_api {
		%s
		prefix bench-presign/
		role_arn {env.UGW_STS_ROLE_ARN}
		sts_endpoint {env.UGW_S3_ENDPOINT}
		secret bench-secret-0123456789abcdef0123456789
	}`, filepath.Join(dir, "users.json"), filepath.Join(dir, "keys"), harness.S3Settings(""))
	gw, token, err := startSignedIn(env, harness.GatewayConfig{Site: site, PlainSite: site})
	if err != nil {
		return nil, err
	}
	defer gw.Stop()
	body, _ := json.Marshal(map[string]any{"fileName": "report.pdf", "fileSize": 1 << 20, "contentType": "application/pdf"})
	var out []presignResult
	for _, target := range []struct{ name, base string }{{"HTTPS", gw.URL}, {"plain HTTP", gw.HTTPURL}} {
		// Warm up: the first call assumes the role; later ones use the cache.
		if _, err := presignOnce(gw.Client, target.base, token, body); err != nil {
			return nil, fmt.Errorf("%s: %v\n%s", target.name, err, gw.Logs())
		}
		r := loadPresign(gw.Client, target.base, token, body, d, conc)
		r.path = fmt.Sprintf("gateway, %s, %d clients", target.name, conc)
		out = append(out, r)
	}
	return out, nil
}

func benchLogin(client *http.Client, base string) (string, error) {
	b, _ := json.Marshal(map[string]string{"email": "bench@example.com", "password": "bench-password"})
	resp, err := client.Post(base+"/auth/login", "application/json", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Data.Token == "" {
		return "", fmt.Errorf("login failed: %d %v", resp.StatusCode, err)
	}
	return r.Data.Token, nil
}

func presignOnce(client *http.Client, base, token string, body []byte) (time.Duration, error) {
	req, _ := http.NewRequest(http.MethodPost, base+"/api/files/upload-url", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		return d, fmt.Errorf("status %d", resp.StatusCode)
	}
	return d, nil
}

// loadPresign runs conc clients for d and summarises their latencies.
func loadPresign(client *http.Client, base, token string, body []byte, d time.Duration, conc int) presignResult {
	return loadFor(d, conc, func(int) error {
		_, err := presignOnce(client, base, token, body)
		return err
	})
}

// loadFor runs conc clients calling one, one call after another, for d and
// summarises the latencies of the calls that succeeded. n counts each
// client's calls from 1.
func loadFor(d time.Duration, conc int, one func(n int) error) presignResult {
	var s loadSample
	s.run(d, conc, one)
	return s.summary()
}

// loadSample gathers the latencies, errors and time of one or more loads.
type loadSample struct {
	lat     []time.Duration
	errs    int
	elapsed time.Duration
}

// run adds a load of conc clients calling one for d.
func (s *loadSample) run(d time.Duration, conc int, one func(n int) error) {
	var mu sync.Mutex
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			for n := 1; time.Now().Before(deadline); n++ {
				t := time.Now()
				if err := one(n); err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			s.lat = append(s.lat, mine...)
			s.errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	s.elapsed += time.Since(start)
}

func (s *loadSample) summary() presignResult {
	lat := slices.Clone(s.lat)
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	return presignResult{
		requests: len(lat), errors: s.errs, reqPerSec: float64(len(lat)) / s.elapsed.Seconds(),
		p50: pct(0.50), p90: pct(0.90), p99: pct(0.99),
	}
}

func printPresign(rows []presignResult, d time.Duration) {
	fmt.Printf("\nPresign: POST /api/files/upload-url (token check, policy, cached STS session, SigV4 presign), %s per row, same 2 cores as the load generator\n\n", d)
	fmt.Println("| path | requests | errors | req/s | p50 | p90 | p99 |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Printf("| %s | %d | %d | %.0f | %s | %s | %s |\n", r.path, r.requests, r.errors, r.reqPerSec,
			r.p50.Round(time.Microsecond), r.p90.Round(time.Microsecond), r.p99.Round(time.Microsecond))
	}
}

// benchUserDir makes a temporary directory (named after pattern, as
// os.MkdirTemp does) holding users.json for the local identity provider:
// one uploader, bench@example.com with password "bench-password". The
// caller removes it.
func benchUserDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("bench-password"), localidp.MinHashCost)
	if err == nil {
		users := fmt.Sprintf(`{"users":[{"email":"bench@example.com","password_hash":%q,"groups":["uploader"]}]}`, hash)
		err = os.WriteFile(filepath.Join(dir, "users.json"), []byte(users), 0o600)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// startSignedIn starts a gateway with cfg and signs the bench user in
// (see benchUserDir) through its login API; the caller stops it.
func startSignedIn(env *harness.Env, cfg harness.GatewayConfig) (*harness.Gateway, string, error) {
	gw, err := env.StartGateway(cfg)
	if err != nil {
		return nil, "", err
	}
	token, err := benchLogin(gw.Client, gw.URL)
	if err != nil {
		gw.Stop()
		return nil, "", err
	}
	return gw, token, nil
}
