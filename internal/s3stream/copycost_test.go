package s3stream

import (
	"io"
	"net"
	"syscall"
	"testing"
)

// BenchmarkCopyCost measures, on loopback TCP in one process, what moving
// bytes from a client socket to S3 sockets costs in CPU for three shapes of
// the middle hop, so that the gateway's CPU per GiB over a bare
// reverse_proxy (issue 16) can be split into its causes:
//
//   - proxy: io.CopyBuffer through one 32 KiB buffer, one goroutine, one
//     upstream connection: what Caddy's reverse_proxy does;
//   - parts-inline: the body read into 16 MiB part buffers of 64 KiB chunks
//     (5 of them, the default bound of 80 MiB), each full part written with
//     writev by the same goroutine: the buffering S3 multipart needs (a
//     part's length and its checksum before it is sent, the bytes kept for a
//     retry) without any hand-off;
//   - parts-1-sender, parts-4-senders: the same buffers handed to 1 or 4
//     sender goroutines with a connection each, as the gateway does
//     (concurrency 1, and 4, its default, which keeps S3's per-part latency
//     off the throughput).
//
// The sender and receiver ends cost the same in every shape; the cpu-s/GiB
// differences are the middle hop's. Run with
//
//	go test -run '^$' -bench CopyCost -benchtime 4x ./internal/s3stream
func BenchmarkCopyCost(b *testing.B) {
	const size = 1 << 30
	const part = 16 << 20
	for _, shape := range []string{"proxy", "parts-inline", "parts-1-sender", "parts-4-senders"} {
		b.Run(shape, func(b *testing.B) {
			b.SetBytes(size)
			var cpu float64
			for b.Loop() {
				cpu += copyOnce(b, shape, size, part)
			}
			b.ReportMetric(cpu/float64(b.N)/(size/float64(1<<30)), "cpu-s/GiB")
		})
	}
}

// copyOnce moves size bytes from a client connection through the middle hop
// to sink connections and returns the process CPU seconds it took.
func copyOnce(b *testing.B, shape string, size, part int) float64 {
	b.Helper()
	senders := 1
	if shape == "parts-4-senders" {
		senders = 4
	}
	inline := shape == "parts-inline"
	in := pipe(b)
	outs := make([]net.Conn, senders)
	done := make(chan struct{}, senders+1)
	for i := range outs {
		c := pipe(b)
		outs[i] = c.w
		go func() { _, _ = io.Copy(io.Discard, c.r); done <- struct{}{} }()
	}
	go func() {
		buf := make([]byte, 256<<10)
		for left := size; left > 0; left -= len(buf) {
			_, _ = in.w.Write(buf[:min(left, len(buf))])
		}
		_ = in.w.Close()
		done <- struct{}{}
	}()

	start := cpuSeconds()
	switch shape {
	case "proxy":
		// Hidden ReaderFrom/WriterTo: no splice, as for an HTTP body.
		_, _ = io.CopyBuffer(struct{ io.Writer }{outs[0]}, struct{ io.Reader }{in.r}, make([]byte, 32<<10))
	default:
		copyParts(in.r, outs, part, inline)
	}
	for _, o := range outs {
		_ = o.Close()
	}
	for range senders + 1 {
		<-done
	}
	_ = in.r.Close()
	return cpuSeconds() - start
}

// copyParts reads r into part buffers of ChunkSize chunks and writes each
// full part with writev, inline to the one output or through a sender
// goroutine per output with the buffers going round a pool, as s3stream
// does.
func copyParts(r io.Reader, outs []net.Conn, part int, inline bool) {
	pool := make(chan [][]byte, len(outs)+1)
	for range len(outs) + 1 {
		p := make([][]byte, part/ChunkSize)
		for i := range p {
			p[i] = new([ChunkSize]byte)[:]
		}
		pool <- p
	}
	send := func(w net.Conn, p [][]byte) {
		bufs := net.Buffers(append([][]byte(nil), p...))
		_, _ = bufs.WriteTo(w)
		pool <- p
	}
	work := make(chan [][]byte)
	finished := make(chan struct{})
	if !inline {
		for _, w := range outs {
			go func() {
				for p := range work {
					send(w, p)
				}
				finished <- struct{}{}
			}()
		}
	}
	for {
		p := <-pool
		n, err := readPart(r, p)
		if n > 0 {
			p = p[:(n+ChunkSize-1)/ChunkSize]
			p[len(p)-1] = p[len(p)-1][:n-(len(p)-1)*ChunkSize]
			if inline {
				send(outs[0], p)
			} else {
				work <- p
			}
		}
		if err != nil {
			break
		}
	}
	if !inline {
		close(work)
		for range outs {
			<-finished
		}
	}
}

// readPart fills the chunks of p from r with reads of at most one chunk.
func readPart(r io.Reader, p [][]byte) (int, error) {
	n := 0
	for _, c := range p {
		m, err := io.ReadFull(r, c[:ChunkSize])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

type connPair struct{ r, w net.Conn }

// pipe returns both ends of a loopback TCP connection.
func pipe(b *testing.B) connPair {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	r := <-accepted
	if r == nil {
		b.Fatal("accept failed")
	}
	return connPair{r: r, w: w}
}

// cpuSeconds is the process's user+system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
