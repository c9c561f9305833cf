package s3stream

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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
// not fit yet does not hold back the ones behind it whose steps do.
//
// An account holds two kinds of memory: part memory (the buffers of parts
// being filled or sent, taken and given back by the uploader) and other
// memory (form fields and part headers, taken with [Account.Acquire] and
// mostly held until the request ends). One part (the reserve) is always kept
// for the part memory of the filling account that started filling first:
// other accounts, and the other memory of that account itself, leave it
// alone. That account can therefore finish its part and free memory whatever
// the others hold, so uploads sharing a budget never deadlock, even when the
// budget holds a single part. An account that fills no part (between files,
// or idle in pass mode while the upstream answers) is no candidate, so it
// cannot sit on the reserve and its form memory cannot eat it.
//
// With a per-client limit ([BufferBudget.SetClientLimit]), the accounts of one
// client ([BufferBudget.OpenClient]) together hold at most that much; beyond
// it, that client's requests wait while other clients proceed. Inside that
// limit the same rule keeps one part for the client's own first filling
// account, so one client's uploads do not deadlock each other either.
type BufferBudget struct {
	limit   int64
	maxWait time.Duration

	mu          sync.Mutex
	reserve     int64
	used        int64
	clientLimit int64 // 0: none
	clients     map[string]*client
	fillers     list.List // *Account filling a part, in the order they started
	waiters     list.List // *waiter, oldest first
}

// client is the memory of all accounts of one client.
type client struct {
	key     string
	used    int64
	open    int       // open accounts
	fillers list.List // *Account of this client filling a part, in order
}

// NewBufferBudget returns a budget of limit bytes. A request that waits
// longer than maxWait for memory gets [ErrMemoryWait]; 0 means it waits as
// long as its context allows.
func NewBufferBudget(limit int64, maxWait time.Duration) *BufferBudget {
	return &BufferBudget{limit: limit, maxWait: maxWait, clients: map[string]*client{}}
}

// SetClientLimit bounds the memory the accounts of one client (see
// [BufferBudget.OpenClient]) hold together; 0 means no bound. It is never
// below the reserve: a client can always fill one part.
func (b *BufferBudget) SetClientLimit(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clientLimit = max(n, 0)
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

// ClientUsed returns the bytes the accounts of client key hold.
func (b *BufferBudget) ClientUsed(key string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.clients[key]; c != nil {
		return c.used
	}
	return 0
}

// Waiting returns how many requests wait for memory.
func (b *BufferBudget) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiters.Len()
}

// keepReserve makes sure at least n bytes stay available to the first
// filling account (at most the whole budget).
func (b *BufferBudget) keepReserve(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reserve = min(max(b.reserve, n), b.limit)
}

// Open starts an account for one request that belongs to no client. Close
// it when the request ends.
func (b *BufferBudget) Open() *Account { return b.OpenClient("") }

// OpenClient starts an account for one request of client key ("" for
// none); the accounts of one client share the client limit. Close it when
// the request ends.
func (b *BufferBudget) OpenClient(key string) *Account {
	b.mu.Lock()
	defer b.mu.Unlock()
	a := &Account{b: b}
	if key != "" {
		c := b.clients[key]
		if c == nil {
			c = &client{key: key}
			b.clients[key] = c
		}
		c.open++
		a.c = c
	}
	return a
}

// Account is the memory one request holds of a [BufferBudget]. It is safe
// for concurrent use.
type Account struct {
	b         *BufferBudget
	c         *client // nil: no client
	held      int64   // all memory, part memory included
	part      int64   // part memory
	partWaits int     // part-memory steps waiting
	fill      *list.Element
	cfill     *list.Element
	closed    bool
}

type waiter struct {
	a     *Account
	n     int64
	part  bool
	ready chan struct{} // closed when granted
}

// startFilling queues a as a filling account. b.mu is held.
func (a *Account) startFilling() {
	if a.fill != nil {
		return
	}
	a.fill = a.b.fillers.PushBack(a)
	if a.c != nil {
		a.cfill = a.c.fillers.PushBack(a)
	}
}

// stopFilling takes a off the filling queue once it holds and waits for no
// part memory. b.mu is held.
func (a *Account) stopFilling() {
	if a.fill == nil || a.part > 0 || a.partWaits > 0 {
		return
	}
	a.b.fillers.Remove(a.fill)
	a.fill = nil
	if a.cfill != nil {
		a.c.fillers.Remove(a.cfill)
		a.cfill = nil
	}
}

// fits reports whether a may take n more bytes, of part memory or not.
// b.mu is held.
func (b *BufferBudget) fits(a *Account, n int64, part bool) bool {
	if !leavesReserve(b.used, b.limit, b.reserve, &b.fillers, a, n, part) {
		return false
	}
	if a.c == nil || b.clientLimit == 0 {
		return true
	}
	return leavesReserve(a.c.used, max(b.clientLimit, b.reserve), b.reserve, &a.c.fillers, a, n, part)
}

// leavesReserve reports whether n more bytes for a keep used within limit
// and leave reserve to the part memory of the first of fillers.
func leavesReserve(used, limit, reserve int64, fillers *list.List, a *Account, n int64, part bool) bool {
	if used+n > limit {
		return false
	}
	var first *Account
	if e := fillers.Front(); e != nil {
		first = e.Value.(*Account)
	}
	if part && first == a {
		return true
	}
	var firstPart int64
	if first != nil {
		firstPart = first.part
	}
	return used-firstPart+n <= limit-reserve
}

// TryAcquire takes n bytes of other memory if they are available now.
func (a *Account) TryAcquire(n int64) bool { return a.tryAcquire(n, false) }

func (a *Account) tryAcquire(n int64, part bool) bool {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.closed {
		return false
	}
	if part {
		a.startFilling()
	}
	// A waiter that fits has been served already: taking the step now jumps
	// no queue.
	if !b.fits(a, n, part) {
		a.stopFilling()
		return false
	}
	a.take(n, part)
	return true
}

func (a *Account) take(n int64, part bool) {
	a.held += n
	a.b.used += n
	if a.c != nil {
		a.c.used += n
	}
	if part {
		a.part += n
	}
}

// give gives back n bytes. b.mu is held.
func (a *Account) give(n int64, part bool) {
	a.held -= n
	a.b.used -= n
	if a.c != nil {
		a.c.used -= n
	}
	if part {
		a.part -= n
		a.stopFilling()
	}
}

// Acquire takes n bytes of other memory (not part buffers), waiting until
// they are available, ctx is done or the budget's MaxWait has passed
// ([ErrMemoryWait]).
func (a *Account) Acquire(ctx context.Context, n int64) error { return a.acquire(ctx, n, false) }

func (a *Account) acquire(ctx context.Context, n int64, part bool) error {
	b := a.b
	if n > b.limit {
		return fmt.Errorf("%w: %d bytes asked, the budget is %d", ErrMemoryWait, n, b.limit)
	}
	b.mu.Lock()
	if a.closed {
		b.mu.Unlock()
		return errors.New("s3stream: account closed")
	}
	if part {
		a.startFilling()
	}
	if b.fits(a, n, part) {
		a.take(n, part)
		b.mu.Unlock()
		return nil
	}
	w := &waiter{a: a, n: n, part: part, ready: make(chan struct{})}
	elem := b.waiters.PushBack(w)
	if part {
		a.partWaits++
	}
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
		// Granted meanwhile: give it back, unless Close already did.
		if !a.closed {
			a.give(n, part)
		}
	default:
		b.waiters.Remove(elem)
		if part {
			a.partWaits--
			a.stopFilling()
		}
	}
	// Either way memory or the first place may have become free.
	b.grant()
	return err
}

// Release gives back n bytes of other memory. It does nothing after Close.
func (a *Account) Release(n int64) { a.release(n, false) }

func (a *Account) release(n int64, part bool) {
	if n <= 0 {
		return
	}
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.closed {
		return // Close gave everything back
	}
	a.give(n, part)
	b.grant()
}

// Close gives back everything the account holds and removes it. Acquire
// fails after Close.
func (a *Account) Close() {
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	a.closeLocked()
}

// closeLocked is Close with b.mu held.
func (a *Account) closeLocked() {
	b := a.b
	if a.closed {
		return
	}
	a.closed = true
	a.give(a.held-a.part, false)
	a.give(a.part, true)
	a.partWaits = 0 // its waiters are dropped by grant or give up themselves
	a.stopFilling()
	if c := a.c; c != nil {
		if c.open--; c.open == 0 {
			delete(b.clients, c.key)
		}
	}
	b.grant()
}

// grant hands memory to waiters in arrival order, skipping those whose step
// does not fit yet. b.mu is held.
func (b *BufferBudget) grant() {
	for e := b.waiters.Front(); e != nil; {
		next := e.Next()
		w := e.Value.(*waiter)
		if !w.a.closed && b.fits(w.a, w.n, w.part) {
			w.a.take(w.n, w.part)
			if w.part {
				w.a.partWaits--
			}
			b.waiters.Remove(e)
			close(w.ready)
		}
		e = next
	}
}

// chunks reuses the chunks of part buffers across uploads.
var chunks chunkCache

// idleChunksMax is how much free chunk memory stays with the process
// however long it is unused: 32 MiB, two default parts.
const idleChunksMax = 32 << 20 / ChunkSize

// trimInterval is how long free chunks beyond idleChunksMax must stay
// unused before their memory goes back.
const trimInterval = 5 * time.Second

// chunkCache hands out part-buffer chunks, whose memory it manages itself
// rather than leaving it to the garbage collector.
//
// With chunks on the Go heap, peak RSS grew with the length of an upload:
// the heap's live size is mostly part buffers, so the collector let the
// garbage of every part (the SDK's and net/http's per-request allocations,
// about 100 KiB) pile up to as much again before it ran, and a sync.Pool
// dropped free chunks at every second cycle, to be allocated afresh while
// the old ones waited as garbage. On Linux the chunks therefore come from
// anonymous memory mappings outside the Go heap (newSlab): the collector
// neither counts them towards its goal nor frees them, so it collects the
// small real heap as often as that heap needs, and chunk memory is what
// uploads hold at most at once (bounded by their budget): a chunk is only
// mapped when no free one is left.
//
// Free chunks stay resident for reuse. Those beyond idleChunksMax that no
// upload took for a whole trimInterval give their pages back to the kernel
// (release) and are kept, without memory, for reuse. Releasing them as
// soon as they were free cost a system call and page faults per chunk on
// every burst, and on a VM each release is a TLB shootdown: it doubled the
// CPU of signed uploads. Elsewhere the chunks are ordinary heap arrays and
// those released are left to the collector.
//
// A chunk handed back may still be read by a request that has failed (net/http
// can go on writing a body after RoundTrip returned): its memory stays mapped,
// so such a read sees other bytes or zeros on a connection that is discarded
// anyway, as with any buffer reuse.
type chunkCache struct {
	mu sync.Mutex
	// idle are free chunks with their memory, the most recently freed last.
	idle []*[ChunkSize]byte
	// low is the fewest idle chunks since the last trim: the first low
	// were not used in between.
	low      int
	trimming bool               // a trim is scheduled
	released []*[ChunkSize]byte // free chunks whose pages went back to the kernel
}

func (c *chunkCache) get() *[ChunkSize]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := pop(&c.idle); b != nil {
		c.low = min(c.low, len(c.idle))
		return b
	}
	if b := pop(&c.released); b != nil {
		return b
	}
	slab := newSlab()
	// The rest of a new slab has no pages yet: it counts as released.
	c.released = append(c.released, slab[1:]...)
	return slab[0]
}

// put takes back all of bs.
func (c *chunkCache) put(bs []*[ChunkSize]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idle = append(c.idle, bs...)
	if len(c.idle) > idleChunksMax && !c.trimming {
		// The first trim only starts the interval: how long the chunks
		// idle now were unused is not known.
		c.trimming = true
		c.low = 0
		time.AfterFunc(trimInterval, c.trim)
	}
}

// trim releases the idle chunks beyond idleChunksMax that were not used
// since the last trim, and runs again while there are more than
// idleChunksMax.
func (c *chunkCache) trim() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := min(c.low, len(c.idle)-idleChunksMax); k > 0 {
		for _, b := range c.idle[:k] {
			if release(b) {
				c.released = append(c.released, b)
			}
		}
		n := copy(c.idle, c.idle[k:])
		clear(c.idle[n:])
		c.idle = c.idle[:n]
	}
	c.low = len(c.idle)
	if len(c.idle) > idleChunksMax {
		time.AfterFunc(trimInterval, c.trim)
	} else {
		c.trimming = false
	}
}

func pop(s *[]*[ChunkSize]byte) *[ChunkSize]byte {
	n := len(*s)
	if n == 0 {
		return nil
	}
	b := (*s)[n-1]
	(*s)[n-1] = nil
	*s = (*s)[:n-1]
	return b
}

// partBuf is one part's bytes, in chunks taken as bytes arrive.
type partBuf struct {
	chunks []*[ChunkSize]byte
	n      int
}

// grow adds one chunk.
func (p *partBuf) grow() {
	p.chunks = append(p.chunks, chunks.get())
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
	chunks.put(p.chunks)
	p.chunks, p.n = nil, 0
}

// reader returns a seekable reader over the bytes.
func (p *partBuf) reader() *partReader { return &partReader{p: p} }

// partReader reads a partBuf. It is an io.ReadSeeker, so the SDK can rewind
// it to retry or to compute checksums.
type partReader struct {
	p   *partBuf
	off int64
	vec [writevChunks][]byte // see writeBuffers
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
// intermediate buffer. To a connection of [WrapConn] it writes up to
// writevChunks chunks per system call.
func (r *partReader) WriteTo(w io.Writer) (int64, error) {
	if bw, ok := w.(buffersWriter); ok {
		return r.writeBuffers(bw)
	}
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

// writevChunks is how many chunks (1 MiB) go to one writev.
const writevChunks = 16

// buffersWriter writes several buffers at once (writev on a socket).
type buffersWriter interface {
	writeBuffers(bufs net.Buffers) (int64, error)
}

// writeBuffers writes the unread bytes to w, writevChunks chunks at a time.
func (r *partReader) writeBuffers(w buffersWriter) (int64, error) {
	var total int64
	for r.off < int64(r.p.n) {
		vec := r.vec[:0]
		for off := r.off; off < int64(r.p.n) && len(vec) < writevChunks; {
			c := r.p.chunks[off/ChunkSize]
			start := int(off % ChunkSize)
			end := min(ChunkSize, int(int64(r.p.n)-off)+start)
			vec = append(vec, c[start:end])
			off += int64(end - start)
		}
		k, err := w.writeBuffers(vec)
		r.off += k
		total += k
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
		acct.release(b.reserved(), true)
	}
	b.free()
	<-p.slots
}
