package s3stream

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// filledPart returns a part buffer holding data.
func filledPart(data []byte) *partBuf {
	p := new(partBuf)
	for p.n < len(data) {
		if len(p.space()) == 0 {
			p.grow()
		}
		p.n += copy(p.space(), data[p.n:])
	}
	return p
}

// recordConn records what is written to it and the largest single write.
type recordConn struct {
	net.Conn
	buf      bytes.Buffer
	maxWrite int
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.maxWrite = max(c.maxWrite, len(p))
	return c.buf.Write(p)
}

// A LimitedReader over a part reader is written straight from the chunks,
// never past the limit, and leaves the rest of the body unread.
func TestBodyConnReadFrom(t *testing.T) {
	data := randomBytes(5*ChunkSize + 123)
	for _, limit := range []int64{0, 1, ChunkSize, 3*ChunkSize + 7, int64(len(data)), int64(len(data)) + 10} {
		p := filledPart(data)
		rec := &recordConn{}
		c := WrapConn(rec).(io.ReaderFrom)
		r := p.reader()
		lr := &io.LimitedReader{R: io.NopCloser(r), N: limit}
		n, err := c.ReadFrom(lr)
		want := min(limit, int64(len(data)))
		if err != nil || n != want || !bytes.Equal(rec.buf.Bytes(), data[:want]) {
			t.Errorf("limit %d: wrote %d bytes (%d recorded), err %v; want %d", limit, n, rec.buf.Len(), err, want)
		}
		if lr.N != limit-want {
			t.Errorf("limit %d: LimitedReader.N = %d, want %d", limit, lr.N, limit-want)
		}
		if rest, _ := io.ReadAll(r); !bytes.Equal(rest, data[want:]) {
			t.Errorf("limit %d: %d bytes left to read, want %d", limit, len(rest), len(data)-int(want))
		}
		if want > 32<<10 && rec.maxWrite <= 32<<10 {
			t.Errorf("limit %d: largest write %d bytes: copied through io.Copy's buffer", limit, rec.maxWrite)
		}
		p.free()
	}
	// Any other reader is copied.
	rec := &recordConn{}
	n, err := WrapConn(rec).(io.ReaderFrom).ReadFrom(io.LimitReader(bytes.NewBufferString("abcdef"), 4))
	if err != nil || n != 4 || rec.buf.String() != "abcd" {
		t.Errorf("plain reader: wrote %d (%q), err %v", n, rec.buf.String(), err)
	}
}

// Through the SDK and net/http, bodies sent over wrapped connections arrive
// whole with their checksums, written from the part buffers.
func TestWrapDialSendsParts(t *testing.T) {
	srv, sent := recordingS3(t)
	var mu sync.Mutex
	var conns []*teeConn
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		rc := &teeConn{Conn: c}
		mu.Lock()
		conns = append(conns, rc)
		mu.Unlock()
		return rc, nil
	}
	client := s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(srv.URL),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		HTTPClient:                 &http.Client{Transport: &http.Transport{DialContext: WrapDial(dial), WriteBufferSize: 4 << 10}},
	}, func(o *s3.Options) { o.APIOptions = append(o.APIOptions, UnsignedPayload) })
	u := New(client, Options{PartSize: s3limits.MinPartSize, Concurrency: 2})
	if _, err := u.Upload(context.Background(), Object{Bucket: "b", Key: "k", Size: -1}, bytes.NewReader(randomBytes(11*mib))); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	parts := 0
	for _, r := range sent() {
		if r.op == "UploadPart" {
			parts++
			if r.checksumCRC != r.bodyCRC32C {
				t.Errorf("part checksum %q, body %q", r.checksumCRC, r.bodyCRC32C)
			}
		}
	}
	if parts != 3 {
		t.Errorf("%d parts sent, want 3", parts)
	}
	largest := 0
	mu.Lock()
	for _, c := range conns {
		largest = max(largest, c.maxWrite)
	}
	mu.Unlock()
	if largest <= 32<<10 {
		t.Errorf("largest write %d bytes: the parts were copied through io.Copy's buffer", largest)
	}
}

// teeConn records the largest write and passes writes on.
type teeConn struct {
	net.Conn
	maxWrite int
}

func (c *teeConn) Write(p []byte) (int, error) {
	c.maxWrite = max(c.maxWrite, len(p))
	return c.Conn.Write(p)
}
