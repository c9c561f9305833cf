package s3stream

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ChunkSize is the step in which part buffers grow and memory is taken from
// a [BufferBudget]: an upload holds at most one chunk more than the bytes it
// has actually received.
const ChunkSize = 64 << 10

// ErrMemoryWait is returned (wrapped) when an upload waited longer than the
// budget's MaxWait for memory. Callers map it to 503 with Retry-After.
var ErrMemoryWait = errors.New("memory budget exhausted")

// BufferBudget bounds the memory of all uploads that share it. Memory is
// taken in small steps as bytes arrive, through an [Account] per request,
// and given back when a part has been sent or the request ends.
//
// Waiting requests are served in arrival order, but a request whose step does
// not fit yet does not hold back the ones behind it whose steps do. One part
// (the reserve) is always kept for the oldest open account, so that it can
// finish its part and free memory whatever the others hold: uploads sharing
// a budget never deadlock, even when the budget holds a single part.
type BufferBudget struct {
	limit   int64
	maxWait time.Duration

	mu       sync.Mutex
	reserve  int64
	used     int64
	accounts list.List // *Account, oldest first
	waiters  list.List // *waiter, oldest first
}

// NewBufferBudget returns a budget of limit bytes. A request that waits
// longer than maxWait for memory gets [ErrMemoryWait]; 0 means it waits as
// long as its context allows.
func NewBufferBudget(limit int64, maxWait time.Duration) *BufferBudget {
	return &BufferBudget{limit: limit, maxWait: maxWait}
}

// Limit returns the budget in bytes.
func (b *BufferBudget) Limit() int64 { return b.limit }

// MaxWait returns how long a request waits for memory before giving up.
func (b *BufferBudget) MaxWait() time.Duration { return b.maxWait }

// Used returns the bytes currently taken.
func (b *BufferBudget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Waiting returns how many requests wait for memory.
func (b *BufferBudget) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiters.Len()
}

// keepReserve makes sure at least n bytes stay available to the oldest
// account (at most the whole budget).
func (b *BufferBudget) keepReserve(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reserve = min(max(b.reserve, n), b.limit)
}

// Open starts an account for one request. Close it when the request ends.
func (b *BufferBudget) Open() *Account {
	b.mu.Lock()
	defer b.mu.Unlock()
	a := &Account{b: b}
	a.elem = b.accounts.PushBack(a)
	return a
}

// Account is the memory one request holds of a [BufferBudget]. It is safe
// for concurrent use.
type Account struct {
	b      *BufferBudget
	elem   *list.Element
	held   int64
	closed bool
}

type waiter struct {
	a     *Account
	n     int64
	ready chan struct{} // closed when granted
}

// fits reports whether a may take n more bytes. b.mu is held.
func (b *BufferBudget) fits(a *Account, n int64) bool {
	if b.used+n > b.limit {
		return false
	}
	oldest := b.accounts.Front().Value.(*Account)
	if oldest == a {
		return true
	}
	// The others together leave the reserve to the oldest.
	return b.used-oldest.held+n <= b.limit-b.reserve
}

// TryAcquire takes n bytes if they are available now.
func (a *Account) TryAcquire(n int64) bool {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	// A waiter that fits has been served already: taking the step now jumps
	// no queue.
	if a.closed || !b.fits(a, n) {
		return false
	}
	a.take(n)
	return true
}

func (a *Account) take(n int64) {
	a.held += n
	a.b.used += n
}

// Acquire takes n bytes, waiting until they are available, ctx is done or
// the budget's MaxWait has passed ([ErrMemoryWait]).
func (a *Account) Acquire(ctx context.Context, n int64) error {
	b := a.b
	if n > b.limit {
		return fmt.Errorf("%w: %d bytes asked, the budget is %d", ErrMemoryWait, n, b.limit)
	}
	b.mu.Lock()
	if a.closed {
		b.mu.Unlock()
		return errors.New("s3stream: account closed")
	}
	if b.fits(a, n) {
		a.take(n)
		b.mu.Unlock()
		return nil
	}
	w := &waiter{a: a, n: n, ready: make(chan struct{})}
	elem := b.waiters.PushBack(w)
	b.mu.Unlock()

	var timeout <-chan time.Time
	if b.maxWait > 0 {
		t := time.NewTimer(b.maxWait)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = fmt.Errorf("%w: waited %v for %d bytes", ErrMemoryWait, b.maxWait, n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready:
		// Granted meanwhile: give it back.
		a.held -= n
		b.used -= n
		b.grant()
	default:
		b.waiters.Remove(elem)
	}
	return err
}

// Release gives back n bytes.
func (a *Account) Release(n int64) {
	if n <= 0 {
		return
	}
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	a.held -= n
	b.used -= n
	b.grant()
}

// Close gives back everything the account holds and removes it. Acquire
// fails after Close.
func (a *Account) Close() {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.closed {
		return
	}
	a.closed = true
	b.used -= a.held
	a.held = 0
	b.accounts.Remove(a.elem)
	b.grant()
}

// grant hands memory to waiters in arrival order, skipping those whose step
// does not fit yet. b.mu is held.
func (b *BufferBudget) grant() {
	for e := b.waiters.Front(); e != nil; {
		next := e.Next()
		w := e.Value.(*waiter)
		if !w.a.closed && b.fits(w.a, w.n) {
			w.a.take(w.n)
			b.waiters.Remove(e)
			close(w.ready)
		}
		e = next
	}
}

// chunks reuses the chunks of part buffers across uploads.
var chunks = sync.Pool{New: func() any { return new([ChunkSize]byte) }}

// partBuf is one part's bytes, in chunks taken as bytes arrive.
type partBuf struct {
	chunks []*[ChunkSize]byte
	n      int
}

// grow adds one chunk.
func (p *partBuf) grow() {
	p.chunks = append(p.chunks, chunks.Get().(*[ChunkSize]byte))
}

// space returns the free end of the last chunk.
func (p *partBuf) space() []byte {
	if len(p.chunks) == 0 {
		return nil
	}
	return p.chunks[len(p.chunks)-1][p.n-(len(p.chunks)-1)*ChunkSize:]
}

// head returns up to n of the first bytes.
func (p *partBuf) head(n int) []byte {
	if len(p.chunks) == 0 {
		return nil
	}
	return p.chunks[0][:min(n, p.n, ChunkSize)]
}

// reserved is the memory the buffer holds.
func (p *partBuf) reserved() int64 { return int64(len(p.chunks)) * ChunkSize }

// free returns the chunks to the pool.
func (p *partBuf) free() {
	for _, c := range p.chunks {
		chunks.Put(c)
	}
	p.chunks, p.n = nil, 0
}

// reader returns a seekable reader over the bytes.
func (p *partBuf) reader() *partReader { return &partReader{p: p} }

// partReader reads a partBuf. It is an io.ReadSeeker, so the SDK can rewind
// it to retry or to compute checksums.
type partReader struct {
	p   *partBuf
	off int64
}

func (r *partReader) Read(b []byte) (int, error) {
	if r.off >= int64(r.p.n) {
		return 0, io.EOF
	}
	total := 0
	for len(b) > 0 && r.off < int64(r.p.n) {
		c := r.p.chunks[r.off/ChunkSize]
		start := int(r.off % ChunkSize)
		end := min(ChunkSize, int(int64(r.p.n)-r.off)+start)
		k := copy(b, c[start:end])
		b = b[k:]
		r.off += int64(k)
		total += k
	}
	return total, nil
}

func (r *partReader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		abs = int64(r.p.n) + offset
	default:
		return 0, errors.New("s3stream: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("s3stream: negative position")
	}
	r.off = abs
	return abs, nil
}

// WriteTo writes the unread bytes to w chunk by chunk, sparing io.Copy its
// intermediate buffer.
func (r *partReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.off < int64(r.p.n) {
		c := r.p.chunks[r.off/ChunkSize]
		start := int(r.off % ChunkSize)
		end := min(ChunkSize, int(int64(r.p.n)-r.off)+start)
		k, err := w.Write(c[start:end])
		r.off += int64(k)
		total += int64(k)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Len returns the number of unread bytes.
func (r *partReader) Len() int { return max(0, r.p.n-int(r.off)) }

// bufferPool hands out at most cap part buffers to one upload; their memory
// is taken from the upload's account chunk by chunk.
type bufferPool struct {
	slots chan struct{}
}

func newBufferPool(n int) *bufferPool {
	return &bufferPool{slots: make(chan struct{}, n)}
}

// get waits for a free slot.
func (p *bufferPool) get(ctx context.Context) (*partBuf, error) {
	// Check cancellation first so that it wins over a free slot.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return new(partBuf), nil
}

// put frees a buffer obtained from get and gives its memory back to acct.
func (p *bufferPool) put(b *partBuf, acct *Account) {
	if acct != nil {
		acct.Release(b.reserved())
	}
	b.free()
	<-p.slots
}
