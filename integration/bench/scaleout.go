package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// scaleoutResult is one row of the scale-out table: n instances behind a
// Caddy load balancer (or one instance alone when lb is false).
type scaleoutResult struct {
	instances        int
	lb               bool
	uploads, upErrs  int
	mbPerSec         float64
	cpuPerGiB        float64 // all Caddy processes (instances and balancer)
	presign          presignResult
	presignCPUPerReq float64 // milliseconds of CPU per presign, all Caddy processes
}

// benchScaleout starts, for each count, that many gateway instances sharing
// the local identity provider's files and the upload-token secret, behind a
// fourth Caddy balancing round-robin over plain HTTP (as an ALB that ends
// TLS would), and measures streamed uploads to sink and presigns through it.
func benchScaleout(env *harness.Env, sink *s3Target, counts []int, d time.Duration, clients int, size, partSize int64, concurrency int) ([]scaleoutResult, error) {
	dir, err := benchUserDir("ugw-bench-scaleout-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	prefix := fmt.Sprintf("bench-scaleout/%d/", time.Now().UnixNano())
	site := fmt.Sprintf(`handle /up/* {
		upload_gateway {
			%s
			allow_anonymous
			prefix %s
			part_size %d
			concurrency %d
			max_uploads_per_client off
		}
	}
	handle {
		upload_auth {
			local {
				users_file %s
				keys_dir %s
			}
			login_per_ip 1000
		}
		upload_api {
			%s
			prefix %s
			role_arn {env.UGW_STS_ROLE_ARN}
			sts_endpoint %s
			secret bench-secret-0123456789abcdef0123456789
			create_only off
		}
	}`, harness.S3Settings(sink.endpoint), prefix, partSize, concurrency,
		filepath.Join(dir, "users.json"), filepath.Join(dir, "keys"),
		harness.S3Settings(env.S3Endpoint), prefix, env.S3Endpoint)

	var rows []scaleoutResult
	for _, n := range counts {
		for _, lb := range []bool{false, true} {
			if !lb && n != 1 {
				continue
			}
			r, err := scaleoutRow(env, site, n, lb, d, clients, size)
			if err != nil {
				return rows, err
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

func scaleoutRow(env *harness.Env, site string, n int, lb bool, d time.Duration, clients int, size int64) (scaleoutResult, error) {
	r := scaleoutResult{instances: n, lb: lb}
	var procs []*harness.Gateway
	defer func() {
		for _, g := range procs {
			g.Stop()
		}
	}()
	var upstreams []string
	for range n {
		g, err := env.StartGateway(harness.GatewayConfig{Site: `respond "use plain HTTP"`, PlainSite: site})
		if err != nil {
			return r, err
		}
		procs = append(procs, g)
		upstreams = append(upstreams, g.HTTPURL)
	}
	front := procs[0]
	if lb {
		g, err := env.StartGateway(harness.GatewayConfig{Site: `respond "use plain HTTP"`, PlainSite: fmt.Sprintf(`reverse_proxy %s {
		lb_policy round_robin
		transport http {
			keepalive_idle_conns_per_host 64
		}
	}`, strings.Join(upstreams, " "))})
		if err != nil {
			return r, err
		}
		procs = append(procs, g)
		front = g
	}
	base, client := front.HTTPURL, front.Client
	cpu := func() time.Duration {
		var sum time.Duration
		for _, g := range procs {
			t, _ := cpuTime(g.PID())
			sum += t
		}
		return sum
	}

	// Streamed uploads: clients PUT one body after another for d.
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	cpu0, t0 := cpu(), time.Now()
	for i := range clients {
		wg.Go(func() {
			for j := 0; time.Now().Before(deadline); j++ {
				body := harness.NewRandomReader(uint64(1000*i+j), size)
				err := putThroughGateway(client, base+"/up", size, body)
				mu.Lock()
				if err != nil {
					r.upErrs++
				} else {
					r.uploads++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed, cpuUsed := time.Since(t0), cpu()-cpu0
	moved := float64(r.uploads) * float64(size)
	r.mbPerSec = moved / 1e6 / elapsed.Seconds()
	if moved > 0 {
		r.cpuPerGiB = cpuUsed.Seconds() / (moved / (1 << 30))
	}

	// Presigns: every instance validates the token the first one issued.
	token, err := benchLogin(client, base)
	if err != nil {
		return r, err
	}
	body, _ := json.Marshal(map[string]any{"fileName": "report.pdf", "fileSize": 1 << 20, "contentType": "application/pdf"})
	for range 2 * n { // each instance assumes the role once
		if _, err := presignOnce(client, base, token, body); err != nil {
			return r, fmt.Errorf("presign warm-up: %v", err)
		}
	}
	cpu0 = cpu()
	r.presign = loadPresign(client, base, token, body, d, clients)
	if r.presign.requests > 0 {
		r.presignCPUPerReq = float64((cpu() - cpu0).Microseconds()) / 1000 / float64(r.presign.requests)
	}
	return r, nil
}

func printScaleout(rows []scaleoutResult, d time.Duration, clients int, size int64) {
	fmt.Printf("\nScale-out: N gateway instances behind a Caddy load balancer (reverse_proxy, lb_policy round_robin, plain HTTP), "+
		"%d clients for %s per measurement; uploads of %s each to s3sink; presigns (POST /api/files/upload-url) signed with STS sessions from SeaweedFS. "+
		"Everything shares the same 2 cores.\n\n", clients, d, humanize.IBytes(uint64(size)))
	fmt.Println("| instances | path | uploads | errors | MB/s | Caddy CPU s/GiB (all processes) | presigns | errors | req/s | p50 | p99 | Caddy CPU ms/presign |")
	fmt.Println("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		path := "direct"
		if r.lb {
			path = "through the balancer"
		}
		fmt.Printf("| %d | %s | %d | %d | %.0f | %.2f | %d | %d | %.0f | %s | %s | %.2f |\n", r.instances, path, r.uploads, r.upErrs,
			r.mbPerSec, r.cpuPerGiB, r.presign.requests, r.presign.errors, r.presign.reqPerSec,
			r.presign.p50.Round(10*time.Microsecond), r.presign.p99.Round(10*time.Microsecond), r.presignCPUPerReq)
	}
}
