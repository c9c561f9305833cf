package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// attackResult is one row of the "under attack" table.
type attackResult struct {
	slow           int
	uploads        int
	errors         int
	bytes          int64
	elapsed        time.Duration
	p50, p99       time.Duration
	slowCut        int // slow connections the gateway ended (408) and that reconnected
	baseline, peak int64
}

// benchAttack measures normal uploads (clients workers, each PUT of size
// bytes after another, for dur) while slow clients are connected: each slow
// client announces a 1 GiB body and sends one byte every 500 ms, and opens a
// new connection whenever the gateway cuts it, so that slow of them are
// connected at all times. A fresh gateway per row, with the default limits
// except max_uploads_per_client (all clients share one IP here).
func benchAttack(env *harness.Env, slowCounts []int, clients int, size, partSize int64, concurrency int, dur time.Duration) ([]attackResult, error) {
	var rows []attackResult
	for _, slow := range slowCounts {
		r, err := attackRow(env, slow, clients, size, partSize, concurrency, dur)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func attackRow(env *harness.Env, slow, clients int, size, partSize int64, concurrency int, dur time.Duration) (attackResult, error) {
	prefix := fmt.Sprintf("bench-attack/%d/", time.Now().UnixNano())
	defer env.DeletePrefix(context.Background(), prefix)
	gw, err := env.StartGateway(harness.GatewayConfig{
		Site: gatewayBlock(prefix, partSize, concurrency, "max_uploads_per_client off"),
	})
	if err != nil {
		return attackResult{}, err
	}
	defer gw.Stop()
	if err := warmUp(gw); err != nil {
		return attackResult{}, err
	}
	baseline, err := gw.RSS()
	if err != nil {
		return attackResult{}, err
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var mu sync.Mutex
	cut := 0
	var slowWG sync.WaitGroup
	tlsCfg := gw.Client.Transport.(*http.Transport).TLSClientConfig
	for i := range slow {
		slowWG.Go(func() {
			for ctx.Err() == nil {
				if trickle(ctx, gw, tlsCfg, i) {
					mu.Lock()
					cut++
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(time.Second) // let them connect

	var (
		durations []time.Duration
		errs      []string
		wg        sync.WaitGroup
	)
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			for n := 0; time.Since(start) < dur; n++ {
				body := harness.NewRandomReader(uint64(c*1000+n), size)
				t0 := time.Now()
				err := putThroughGateway(gw.Client, gw.URL+fmt.Sprintf("/n%d-%d", c, n), size, body)
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					errs = append(errs, err.Error())
				} else {
					durations = append(durations, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stop()
	slowWG.Wait()
	peak, err := gw.PeakRSS()
	if err != nil {
		return attackResult{}, err
	}
	slices.Sort(durations)
	pct := func(p float64) time.Duration {
		if len(durations) == 0 {
			return 0
		}
		return durations[min(len(durations)-1, int(float64(len(durations))*p))]
	}
	if len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "bench: attack with %d slow clients: %d errors, first: %q\n", slow, len(errs), errs[0])
	}
	return attackResult{
		slow: slow, uploads: len(durations), errors: len(errs), bytes: int64(len(durations)) * size,
		elapsed: elapsed, p50: pct(0.5), p99: pct(0.99), slowCut: cut, baseline: baseline, peak: peak,
	}, nil
}

// trickle is one slow client connection: a PUT announcing 1 GiB, then a
// byte every 500 ms until the gateway answers or ctx ends. It reports
// whether the gateway ended it.
func trickle(ctx context.Context, gw *harness.Gateway, tlsCfg *tls.Config, i int) bool {
	conn, err := tls.Dial("tcp", strings.TrimPrefix(gw.URL, "https://"), tlsCfg)
	if err != nil {
		time.Sleep(100 * time.Millisecond)
		return false
	}
	defer conn.Close()
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		_, _ = io.Copy(io.Discard, conn) // the answer, then EOF
	}()
	fmt.Fprintf(conn, "PUT /slow-%d.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\nx", i, 1<<30)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-answered:
			return true
		case <-tick.C:
			if _, err := conn.Write([]byte{'x'}); err != nil {
				return true
			}
		}
	}
}

func printAttack(rows []attackResult, clients int, size int64, dur time.Duration) {
	fmt.Printf("\nUnder attack: %d clients uploading %s bodies one after another for %s (raw PUT over HTTPS) while slow clients are connected "+
		"(each announces 1 GiB and sends a byte every 500 ms, and reconnects when cut); fresh gateway per row, default limits "+
		"(memory_limit 1GiB, read_timeout 30s, min_rate 8KiB) except max_uploads_per_client off\n\n", clients, humanize.IBytes(uint64(size)), dur)
	fmt.Println("| slow clients | uploads | errors | MB/s | p50 upload | p99 upload | slow connections cut | baseline RSS | peak RSS (VmHWM) |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Printf("| %d | %d | %d | %.0f | %s | %s | %d | %d MiB | %d MiB |\n", r.slow, r.uploads, r.errors,
			float64(r.bytes)/1e6/r.elapsed.Seconds(), r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond),
			r.slowCut, r.baseline>>20, r.peak>>20)
	}
}
