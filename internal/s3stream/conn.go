package s3stream

import (
	"context"
	"errors"
	"io"
	"net"
)

// DialFunc is the signature of [net/http.Transport.DialContext].
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// WrapDial returns a dial function whose connections let net/http write
// part bodies to the socket straight from their buffers (see [WrapConn]).
// Set it as the DialContext of the S3 client's transport:
//
//	tr.DialContext = s3stream.WrapDial(tr.DialContext)
//
// A nil dial uses a zero [net.Dialer].
func WrapDial(dial DialFunc) DialFunc {
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return WrapConn(c), nil
	}
}

// WrapConn wraps a connection to S3 so that request bodies of known length
// are written from their own buffers instead of being copied first.
//
// net/http sends a body of known length as io.Copy(conn,
// io.LimitReader(body, ContentLength)) once its write buffer is flushed. The
// LimitedReader hides the body's WriteTo, so io.Copy reads each part through
// a 32 KiB buffer it allocates per request: one memmove of every byte and 32
// KiB of garbage per part. The wrapped connection implements ReadFrom: for a
// LimitedReader over an io.WriterTo (the SDK keeps the part reader's WriteTo
// visible), the body writes its chunks to the socket itself, never more than
// the limit. Other readers are copied as before.
//
// Over HTTPS the transport wraps this connection in TLS, which encrypts from
// its own record buffer; the gain is for plain HTTP (a loopback or VPC
// endpoint).
func WrapConn(c net.Conn) net.Conn {
	if _, ok := c.(*bodyConn); ok {
		return c
	}
	return &bodyConn{Conn: c}
}

type bodyConn struct {
	net.Conn
}

// errLimit stops a WriterTo at the LimitedReader's limit.
var errLimit = errors.New("s3stream: body limit reached")

// ReadFrom writes r to the connection; see [WrapConn].
func (c *bodyConn) ReadFrom(r io.Reader) (int64, error) {
	lr, ok := r.(*io.LimitedReader)
	if !ok {
		return io.Copy(c.Conn, r)
	}
	wt, ok := lr.R.(io.WriterTo)
	if !ok {
		return io.Copy(c.Conn, r)
	}
	lw := &limitedWriter{w: c.Conn, n: lr.N}
	n, err := wt.WriteTo(lw)
	lr.N -= n
	if errors.Is(err, errLimit) {
		err = nil
	}
	return n, err
}

// limitedWriter writes at most n bytes to w; beyond them it writes what fits
// and returns errLimit.
type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errLimit
	}
	var over bool
	if int64(len(p)) > l.n {
		p, over = p[:l.n], true
	}
	k, err := l.w.Write(p)
	l.n -= int64(k)
	if err == nil && over {
		err = errLimit
	}
	return k, err
}

// writeBuffers writes bufs, at most n bytes of them, with one writev where
// w is a socket. Beyond n it writes what fits and returns errLimit.
func (l *limitedWriter) writeBuffers(bufs net.Buffers) (int64, error) {
	if l.n <= 0 {
		return 0, errLimit
	}
	var size int64
	over := false
	for i, b := range bufs {
		if size+int64(len(b)) > l.n {
			bufs[i] = b[:l.n-size]
			bufs = bufs[:i+1]
			over = true
			break
		}
		size += int64(len(b))
	}
	n, err := bufs.WriteTo(l.w)
	l.n -= n
	if err == nil && over {
		err = errLimit
	}
	return n, err
}
