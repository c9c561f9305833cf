package tus

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// codeServerBusy is the JSON error code of a PATCH that found no memory,
// as streamed uploads answer it.
const codeServerBusy = "SERVER_BUSY"

// idleBuffersBytes bounds the free part buffers kept for reuse: 32 MiB,
// as the streamed uploads' chunk cache.
const idleBuffersBytes = 32 << 20

// partBuffers hands out the PartSize buffers of the PATCHes in progress:
// at most Config.MemoryLimit / PartSize at once, a PATCH beyond waiting
// up to Config.MemoryWait for one. Free buffers are kept on a list that
// the garbage collector does not empty: with a sync.Pool, which loses its
// contents every second GC, a long upload took a fresh buffer while the
// dropped one waited as garbage, and peak RSS reached about twice the
// bound.
type partBuffers struct {
	size    int64
	wait    time.Duration
	slots   chan struct{}
	mu      sync.Mutex
	idle    [][]byte
	idleMax int
}

func newPartBuffers(size, limit int64, wait time.Duration) *partBuffers {
	n := max(1, limit/size)
	return &partBuffers{size: size, wait: wait, slots: make(chan struct{}, n),
		idleMax: int(min(n, max(1, idleBuffersBytes/size)))}
}

// get returns a buffer counted to the limit, to be given back with put. It
// answers 503 SERVER_BUSY when none is free within the wait, and ctx's
// error when ctx (the client's request) ends first.
func (p *partBuffers) get(ctx context.Context) ([]byte, error) {
	select {
	case p.slots <- struct{}{}:
	default:
		t := time.NewTimer(p.wait)
		defer t.Stop()
		select {
		case p.slots <- struct{}{}:
		case <-t.C:
			return nil, &httpError{status: http.StatusServiceUnavailable, code: codeServerBusy,
				retryAfter: strconv.Itoa(max(1, int(p.wait/time.Second))),
				msg:        "the gateway's memory for uploads is in use; retry later"}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return p.take(), nil
}

// put gives back a buffer from get.
func (p *partBuffers) put(b []byte) {
	p.keep(b)
	<-p.slots
}

// take returns a buffer not counted to the limit, for the rare second
// buffer of a PATCH (a part read back from S3); give it back with keep.
func (p *partBuffers) take() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.idle); n > 0 {
		b := p.idle[n-1]
		p.idle = slices.Delete(p.idle, n-1, n) // clears the dropped slot
		return b
	}
	return make([]byte, p.size)
}

// keep puts b on the free list, or leaves it to the garbage collector
// when the list is full.
func (p *partBuffers) keep(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) < p.idleMax {
		p.idle = append(p.idle, b)
	}
}
