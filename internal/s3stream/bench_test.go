package s3stream

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/integration/s3sink"
)

// processCPU is the user+system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loopBody yields size bytes by repeating a random block: cheap to produce,
// so that the benchmark measures the uploader.
type loopBody struct {
	block []byte
	off   int
	left  int64
}

func newLoopBody(block []byte, size int64) *loopBody { return &loopBody{block: block, left: size} }

func (l *loopBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), l.left)]
	n := 0
	for n < len(p) {
		k := copy(p[n:], l.block[l.off:])
		n += k
		l.off = (l.off + k) % len(l.block)
	}
	l.left -= int64(n)
	return n, nil
}

// BenchmarkUploadToSink streams bodies through the real SDK over loopback
// HTTP into the in-process s3sink (which checks every checksum and signed
// payload hash). Its CPU profile shows the uploader's own cost:
//
//	go test -run '^$' -bench UploadToSink -benchtime 8x -cpuprofile cpu.out ./internal/s3stream/
func BenchmarkUploadToSink(b *testing.B) {
	sink := httptest.NewServer(s3sink.New())
	defer sink.Close()
	block := make([]byte, 1<<20+17)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range block {
		block[i] = byte(r.Uint32())
	}
	const size = 256 << 20
	for _, tc := range benchCases {
		b.Run(tc.name, func(b *testing.B) {
			client := s3.New(s3.Options{
				Region:                     "us-east-1",
				BaseEndpoint:               aws.String(sink.URL),
				UsePathStyle:               true,
				Credentials:                credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
				RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
				HTTPClient:                 &http.Client{Transport: tc.transport()},
			}, func(o *s3.Options) {
				if tc.unsigned {
					o.APIOptions = append(o.APIOptions, UnsignedPayload)
				}
			})
			opts := tc.opts
			opts.Budget = NewBufferBudget(1<<30, 0)
			u := New(client, opts)
			b.SetBytes(size)
			cpu0 := processCPU()
			var n int64
			for i := 0; b.Loop(); i++ {
				n += size
				res, err := u.Upload(context.Background(), Object{Bucket: "b", Key: fmt.Sprint("k", i), Size: size}, newLoopBody(block, size))
				if err != nil {
					b.Fatal(err)
				}
				if res.Size != size {
					b.Fatalf("stored %d bytes", res.Size)
				}
			}
			// Process CPU (uploader, SDK and sink together) per GiB: unlike
			// ns/op it does not depend on what else runs on the machine.
			b.ReportMetric((processCPU()-cpu0).Seconds()/(float64(n)/(1<<30)), "cpu-s/GiB")
		})
	}
}
