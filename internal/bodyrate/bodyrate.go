// Package bodyrate stops request bodies that arrive too slowly: a client
// that sends a byte now and then (slowloris) would otherwise hold a
// connection, and the memory of its half-filled buffers, for as long as it
// likes.
//
// # Implementation
//
// A [Reader] keeps a time allowance, Timeout at the start. Time spent
// blocked in Read uses it up; every byte received earns 1/MinRate seconds
// back, up to Timeout again. A client that sends at MinRate or faster never
// runs out; one that stalls is cut after Timeout; one that sends at half
// MinRate is cut after about 2 × Timeout. Time the caller spends not reading
// (sending parts to S3, waiting for memory) does not count.
//
// When the allowance runs out while Read is blocked on a silent client, a
// timer sets the connection's read deadline to now, which interrupts the
// Read. Otherwise the connection's deadline is left alone, so the server's
// own read timeouts still apply. Where the response writer offers no read
// deadline (a test's recorder, say), the allowance is checked only when
// Read returns.
package bodyrate

import (
	"fmt"
	"io"
	"os"
	"time"
)

// ErrTooSlow is returned when the allowance ran out and the connection's own
// deadline did not fire first. It wraps [os.ErrDeadlineExceeded], like the
// error of a connection read that hit its deadline.
var ErrTooSlow = fmt.Errorf("bodyrate: the body arrives too slowly: %w", os.ErrDeadlineExceeded)

// Reader enforces the allowance on r. It is not safe for concurrent use.
type Reader struct {
	r           io.Reader
	timeout     time.Duration
	minRate     int64
	setDeadline func(time.Time) error // nil when unsupported
	left        time.Duration
	now         func() time.Time
	timer       *time.Timer
	fired       bool // the timer set the deadline: the connection is done
}

// New returns a Reader of r with the given allowance and minimum rate
// (bytes per second; 0 means only stalls longer than timeout are cut).
// setDeadline sets the connection's read deadline, typically
// http.NewResponseController(w).SetReadDeadline; nil means none.
func New(r io.Reader, timeout time.Duration, minRate int64, setDeadline func(time.Time) error) *Reader {
	return &Reader{r: r, timeout: timeout, minRate: minRate, setDeadline: setDeadline, left: timeout, now: time.Now}
}

// Read reads from the underlying reader within the allowance.
func (g *Reader) Read(p []byte) (int, error) {
	if g.left <= 0 || g.fired {
		return 0, ErrTooSlow
	}
	start := g.now()
	if g.setDeadline != nil {
		if g.timer == nil {
			g.timer = time.AfterFunc(g.left, g.interrupt)
		} else {
			g.timer.Reset(g.left)
		}
	}
	n, err := g.r.Read(p)
	if g.timer != nil && !g.timer.Stop() {
		g.fired = true
	}
	g.left -= g.now().Sub(start)
	switch {
	case g.minRate > 0:
		g.left += time.Duration(int64(n) * int64(time.Second) / g.minRate)
	case n > 0:
		g.left = g.timeout
	}
	g.left = min(g.left, g.timeout)
	if err == nil && (g.left <= 0 || g.fired) {
		err = ErrTooSlow
	}
	return n, err
}

// interrupt ends a Read blocked past the allowance.
func (g *Reader) interrupt() {
	_ = g.setDeadline(time.Now())
}
