package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// concurrentResult is the concurrent-uploads table.
type concurrentResult struct {
	clients        int
	size           int64
	partSize       int64
	concurrency    int
	memoryLimit    int64
	ok, errors     int
	elapsed        time.Duration
	p50, p99, max  time.Duration
	baseline, peak int64
	firstErrs      []string
	bytesStored    int64
}

// benchConcurrent starts a fresh gateway and has clients goroutines each PUT
// one body of size bytes through HTTPS, all released at the same moment.
func benchConcurrent(env *harness.Env, clients int, size, partSize int64, concurrency int, memoryLimit int64) (concurrentResult, error) {
	prefix := fmt.Sprintf("bench-concurrent/%d/", time.Now().UnixNano())
	defer env.DeletePrefix(context.Background(), prefix)
	gw, err := env.StartGateway(harness.GatewayConfig{
		// All clients share one IP here: no per-client cap.
		Site: gatewayBlock(prefix, partSize, concurrency, fmt.Sprintf("memory_limit %d", memoryLimit), "max_uploads_per_client off"),
	})
	if err != nil {
		return concurrentResult{}, err
	}
	defer gw.Stop()
	if err := warmUp(gw); err != nil {
		return concurrentResult{}, err
	}
	baseline, err := gw.RSS()
	if err != nil {
		return concurrentResult{}, err
	}

	var (
		mu        sync.Mutex
		durations []time.Duration
		errs      []string
		wg        sync.WaitGroup
		ready     sync.WaitGroup
		start     = make(chan struct{})
	)
	ready.Add(clients)
	for i := range clients {
		wg.Go(func() {
			body := harness.NewRandomReader(uint64(time.Now().UnixNano())+uint64(i), size)
			ready.Done()
			<-start
			t0 := time.Now()
			err := putThroughGateway(gw.Client, gw.URL+fmt.Sprintf("/c%d", i), size, body)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				return
			}
			durations = append(durations, d)
		})
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	peak, err := gw.PeakRSS()
	if err != nil {
		return concurrentResult{}, err
	}

	slices.Sort(durations)
	pct := func(p float64) time.Duration {
		if len(durations) == 0 {
			return 0
		}
		return durations[min(len(durations)-1, int(float64(len(durations))*p))]
	}
	r := concurrentResult{
		clients: clients, size: size, partSize: partSize, concurrency: concurrency, memoryLimit: memoryLimit,
		ok: len(durations), errors: len(errs), elapsed: elapsed,
		p50: pct(0.50), p99: pct(0.99), baseline: baseline, peak: peak,
		bytesStored: int64(len(durations)) * size,
	}
	if len(durations) > 0 {
		r.max = durations[len(durations)-1]
	}
	if len(errs) > 0 {
		r.firstErrs = errs[:min(len(errs), 3)]
		fmt.Fprintf(os.Stderr, "bench: concurrent: %d errors, first: %q\n", len(errs), r.firstErrs)
	}
	return r, nil
}

func printConcurrent(r concurrentResult) {
	fmt.Printf("\n%d concurrent uploads of %s each, raw PUT over HTTPS (one connection each, all released at once), fresh gateway, part size %s, concurrency %d\n\n",
		r.clients, humanize.IBytes(uint64(r.size)), humanize.IBytes(uint64(r.partSize)), r.concurrency)
	target := r.memoryLimit + 64<<20
	met := "met"
	if r.peak-r.baseline > target {
		met = "NOT met"
	}
	fmt.Println("| clients | body | total MB/s | wall time | ok | errors | p50 upload | p99 upload | slowest | baseline RSS | peak RSS (VmHWM) | peak − baseline | memory_limit (part buffers) | target: memory_limit + 64 MiB |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	fmt.Printf("| %d | %s | %.0f | %s | %d | %d | %s | %s | %s | %d MiB | %d MiB | %d MiB | %s | %d MiB: %s |\n",
		r.clients, humanize.IBytes(uint64(r.size)), float64(r.bytesStored)/1e6/r.elapsed.Seconds(),
		r.elapsed.Round(time.Millisecond), r.ok, r.errors,
		r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.max.Round(time.Millisecond),
		r.baseline>>20, r.peak>>20, (r.peak-r.baseline)>>20, humanize.IBytes(uint64(r.memoryLimit)), target>>20, met)
	fmt.Printf("\nBuffers grow in 64 KiB steps as bytes arrive, each upload holds at most concurrency+1 parts of at most memory_limit/(concurrency+1), "+
		"and all uploads together at most memory_limit %s (the rest wait); peak RSS is bounded by baseline + memory_limit + Go heap headroom (peak − baseline = %d MiB here).\n",
		humanize.IBytes(uint64(r.memoryLimit)), (r.peak-r.baseline)>>20)
}
