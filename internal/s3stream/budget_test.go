package s3stream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

func TestBudget(t *testing.T) {
	const limit = 10 * ChunkSize
	tests := []struct {
		name string
		run  func(t *testing.T, b *BufferBudget)
	}{
		{"a big waiter does not hold back a small step behind it", func(t *testing.T, b *BufferBudget) {
			oldest, big, small := b.Open(), b.Open(), b.Open()
			defer oldest.Close()
			defer big.Close()
			defer small.Close()
			mustAcquire(t, oldest, 5*ChunkSize)
			waiting := make(chan error, 1)
			go func() { waiting <- big.Acquire(context.Background(), 6*ChunkSize) }()
			waitFor(t, func() bool { return b.Waiting() == 1 })
			done := make(chan error, 1)
			go func() { done <- small.Acquire(context.Background(), ChunkSize) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("a small step waited behind a big one that does not fit")
			}
			oldest.Release(5 * ChunkSize)
			if err := <-waiting; err != nil {
				t.Fatal(err)
			}
		}},
		{"the oldest account always keeps the reserve", func(t *testing.T, b *BufferBudget) {
			b.keepReserve(4 * ChunkSize)
			oldest, other := b.Open(), b.Open()
			defer oldest.Close()
			defer other.Close()
			mustAcquirePart(t, oldest, ChunkSize)
			mustAcquirePart(t, other, 6*ChunkSize)
			if other.tryAcquire(ChunkSize, true) || other.TryAcquire(ChunkSize) {
				t.Fatal("a younger account took the oldest one's reserve")
			}
			mustAcquirePart(t, oldest, 3*ChunkSize)
		}},
		{"the reserve passes to the next oldest", func(t *testing.T, b *BufferBudget) {
			b.keepReserve(4 * ChunkSize)
			first, second := b.Open(), b.Open()
			defer second.Close()
			mustAcquirePart(t, first, 2*ChunkSize)
			mustAcquirePart(t, second, ChunkSize)
			first.Close()
			mustAcquirePart(t, second, limit-ChunkSize)
		}},
		{"a wait longer than MaxWait fails with ErrMemoryWait", func(t *testing.T, b *BufferBudget) {
			hog, a := b.Open(), b.Open()
			defer hog.Close()
			defer a.Close()
			mustAcquire(t, hog, limit)
			err := a.Acquire(context.Background(), ChunkSize)
			if !errors.Is(err, ErrMemoryWait) {
				t.Fatalf("Acquire = %v, want ErrMemoryWait", err)
			}
			if b.Waiting() != 0 {
				t.Errorf("%d waiters left", b.Waiting())
			}
		}},
		{"a cancelled waiter leaves the queue", func(t *testing.T, b *BufferBudget) {
			hog, a := b.Open(), b.Open()
			defer hog.Close()
			defer a.Close()
			mustAcquire(t, hog, limit)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Acquire(ctx, ChunkSize) }()
			waitFor(t, func() bool { return b.Waiting() == 1 })
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("Acquire = %v, want context.Canceled", err)
			}
			if b.Waiting() != 0 {
				t.Errorf("%d waiters left", b.Waiting())
			}
			hog.Close()
			if b.Used() != 0 {
				t.Errorf("Used = %d after everything was given back", b.Used())
			}
		}},
		{"form memory of the first filling account does not eat the reserve", func(t *testing.T, b *BufferBudget) {
			b.keepReserve(4 * ChunkSize)
			oldest, other := b.Open(), b.Open()
			defer oldest.Close()
			defer other.Close()
			mustAcquirePart(t, oldest, ChunkSize)
			mustAcquire(t, oldest, 3*ChunkSize) // form fields, held until the request ends
			for other.tryAcquire(ChunkSize, true) {
			}
			// The oldest account must still be able to finish a part of
			// reserve size: 3 more chunks.
			if !oldest.tryAcquire(3*ChunkSize, true) {
				t.Fatalf("used %d of %d: the oldest account's form memory ate its reserve", b.Used(), limit)
			}
		}},
		{"an account that fills no part does not sit on the reserve", func(t *testing.T, b *BufferBudget) {
			b.keepReserve(4 * ChunkSize)
			idle, filler := b.Open(), b.Open()
			defer idle.Close()
			defer filler.Close()
			mustAcquire(t, idle, 2*ChunkSize) // e.g. pass mode, waiting for the upstream
			mustAcquirePart(t, filler, limit-2*ChunkSize)
		}},
		{"form memory leaves the reserve to part buffers", func(t *testing.T, b *BufferBudget) {
			b.keepReserve(4 * ChunkSize)
			a, filler := b.Open(), b.Open()
			defer a.Close()
			defer filler.Close()
			if a.TryAcquire(7 * ChunkSize) {
				t.Fatal("form memory took the reserve")
			}
			mustAcquire(t, a, 6*ChunkSize)
			mustAcquirePart(t, filler, 4*ChunkSize)
		}},
		{"Release after Close gives nothing back twice", func(t *testing.T, b *BufferBudget) {
			a, other := b.Open(), b.Open()
			defer other.Close()
			mustAcquire(t, other, 2*ChunkSize)
			mustAcquire(t, a, 3*ChunkSize)
			a.Close()
			a.Release(3 * ChunkSize)
			a.release(ChunkSize, true)
			if used := b.Used(); used != 2*ChunkSize {
				t.Errorf("Used = %d, want %d", used, 2*ChunkSize)
			}
		}},
		{"a late grant after Close is not given back twice", func(t *testing.T, b *BufferBudget) {
			hog, a := b.Open(), b.Open()
			defer hog.Close()
			mustAcquire(t, hog, limit-ChunkSize)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Acquire(ctx, 2*ChunkSize) }()
			waitFor(t, func() bool { return b.Waiting() == 1 })
			b.mu.Lock()
			cancel() // the waiter gives up and queues for b.mu ...
			time.Sleep(50 * time.Millisecond)
			hog.give(ChunkSize, false) // ... while its step is granted
			b.grant()
			a.closeLocked() // and its request ends
			b.mu.Unlock()
			<-done
			if used := b.Used(); used != limit-2*ChunkSize {
				t.Errorf("Used = %d, want %d", used, limit-2*ChunkSize)
			}
		}},
		{"Close gives everything back", func(t *testing.T, b *BufferBudget) {
			a := b.Open()
			mustAcquire(t, a, 3*ChunkSize)
			a.Close()
			if b.Used() != 0 {
				t.Errorf("Used = %d", b.Used())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, NewBufferBudget(limit, 200*time.Millisecond))
		})
	}
}

// The accounts of one client hold at most the client limit together; the
// other clients proceed, and the client's own first filling account keeps a
// part of it.
func TestBudgetPerClient(t *testing.T) {
	const (
		limit       = 16 * ChunkSize
		clientLimit = 6 * ChunkSize
		reserve     = 3 * ChunkSize
	)
	type step struct {
		acct    string // "x1": account 1 of client x; "n1": account without a client
		n       int64  // chunks; negative: release
		part    bool
		wantOK  bool
		comment string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"one client's uploads together stop at the client limit", []step{
			{"x1", 3, true, true, ""},
			{"x2", 2, true, true, ""},
			{"x3", 1, true, true, ""},
			{"x4", 1, true, false, "client limit reached"},
			{"x1", 1, false, false, "form memory too"},
			{"y1", 5, true, true, "another client proceeds"},
			{"n1", 5, true, true, "and a request without a client"},
		}},
		{"a client's memory comes back as its parts are sent", []step{
			{"x1", 3, true, true, ""},
			{"x2", 3, true, true, ""},
			{"x3", 1, true, false, ""},
			{"x2", -2, true, true, ""},
			{"x3", 1, true, true, ""},
		}},
		{"the client's first filling account keeps a part of the client limit", []step{
			{"x1", 1, true, true, ""},
			{"x2", 3, true, true, ""},
			{"x3", 1, true, false, "would eat x1's part"},
			{"x2", 1, false, false, "form memory too"},
			{"x1", 2, true, true, "x1 fills its part"},
		}},
		{"the client's reserve passes on when its first account is between files", []step{
			{"x1", 1, true, true, ""},
			{"x2", 3, true, true, ""},
			{"x1", -1, true, true, ""},
			{"x2", 3, true, true, "x2 is the first filling account now"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBufferBudget(limit, 0)
			b.keepReserve(reserve)
			b.SetClientLimit(clientLimit)
			accts := map[string]*Account{}
			defer func() {
				for _, a := range accts {
					a.Close()
				}
				if b.Used() != 0 || len(b.clients) != 0 {
					t.Errorf("after Close: used %d, clients %d", b.Used(), len(b.clients))
				}
			}()
			for i, s := range tt.steps {
				a := accts[s.acct]
				if a == nil {
					key := s.acct[:1]
					if key == "n" {
						key = ""
					}
					a = b.OpenClient(key)
					accts[s.acct] = a
				}
				if s.n < 0 {
					a.release(-s.n*ChunkSize, s.part)
					continue
				}
				if got := a.tryAcquire(s.n*ChunkSize, s.part); got != s.wantOK {
					t.Fatalf("step %d (%s takes %d chunks, part %v; %s) = %v, want %v; client x holds %d",
						i, s.acct, s.n, s.part, s.comment, got, s.wantOK, b.ClientUsed("x")/ChunkSize)
				}
			}
		})
	}
	t.Run("a waiting client is served when its own memory comes back", func(t *testing.T) {
		b := NewBufferBudget(limit, 0)
		b.keepReserve(reserve)
		b.SetClientLimit(clientLimit)
		x1, x2 := b.OpenClient("x"), b.OpenClient("x")
		defer x2.Close()
		mustAcquirePart(t, x1, clientLimit)
		done := make(chan error, 1)
		go func() { done <- x2.acquire(context.Background(), ChunkSize, true) }()
		waitFor(t, func() bool { return b.Waiting() == 1 })
		x1.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func mustAcquire(t *testing.T, a *Account, n int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.Acquire(ctx, n); err != nil {
		t.Fatalf("Acquire(%d): %v", n, err)
	}
}

func mustAcquirePart(t *testing.T, a *Account, n int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.acquire(ctx, n, true); err != nil {
		t.Fatalf("acquire part memory (%d): %v", n, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// trickle is a body that sends some bytes and then blocks until released
// with an error, like a client that stopped sending.
type trickle struct {
	data   []byte
	read   chan struct{} // closed once data has been read
	stop   chan error
	closed bool
}

func newTrickle(data []byte) *trickle {
	return &trickle{data: data, read: make(chan struct{}), stop: make(chan error, 1)}
}

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(p, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	if !r.closed {
		r.closed = true
		close(r.read)
	}
	return 0, <-r.stop
}

// A client that announces a huge body and sends a few bytes must not make
// the gateway set aside memory for it: only the bytes that arrived (rounded
// up to one chunk) are taken, and parts do not grow with the declared size.
func TestUploadTakesMemoryAsBytesArrive(t *testing.T) {
	tests := []struct {
		name     string
		declared int64
	}{
		{"declared 1 TiB", 1 << 40},
		{"declared 5 TiB", s3limits.MaxObjectSize},
		{"unknown size", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			budget := NewBufferBudget(8<<30, 0)
			u := New(newFake(), Options{PartSize: 16 * mib, Budget: budget, MaxPartSize: s3limits.MaxPartSize})
			body := newTrickle([]byte("hello"))
			done := make(chan error, 1)
			go func() {
				_, err := u.Upload(context.Background(), Object{Bucket: "b", Key: "k", Size: tt.declared}, body)
				done <- err
			}()
			select {
			case <-body.read:
			case err := <-done:
				t.Fatalf("Upload returned early: %v", err)
			}
			if used := budget.Used(); used > ChunkSize {
				t.Errorf("after 5 bytes the upload holds %d bytes of the budget, want at most %d", used, ChunkSize)
			}
			body.stop <- syscall.ECONNRESET
			if err := <-done; !errors.Is(err, ErrRead) {
				t.Errorf("Upload = %v, want ErrRead", err)
			}
			if used := budget.Used(); used != 0 {
				t.Errorf("%d bytes not given back", used)
			}
		})
	}
	t.Run("parts do not grow with the declared size", func(t *testing.T) {
		fake := newFake()
		u := New(fake, Options{PartSize: s3limits.MinPartSize, Concurrency: 1})
		body := randomBytes(11 * mib)
		res, err := u.Upload(context.Background(), Object{Bucket: "b", Key: "k", Size: 1 << 40}, io.MultiReader(bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		if res.Parts != 3 {
			t.Errorf("parts = %d, want 3 parts of 5 MiB", res.Parts)
		}
	})
	t.Run("a declared size beyond what capped parts hold is refused up front", func(t *testing.T) {
		fake := newFake()
		u := New(fake, Options{PartSize: s3limits.MinPartSize, Concurrency: 4, Budget: NewBufferBudget(1<<30, 0)})
		_, err := u.Upload(context.Background(), Object{Bucket: "b", Key: "k", Size: s3limits.MaxObjectSize}, bytes.NewReader(nil))
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("Upload = %v, want ErrTooLarge", err)
		}
		if len(fake.calls) != 0 {
			t.Errorf("S3 calls: %v", fake.calls)
		}
	})
}

// When memory is short, an upload waits at most the budget's MaxWait; and
// an upload whose client has gone stops waiting at once.
func TestUploadWaitingForMemory(t *testing.T) {
	tests := []struct {
		name    string
		maxWait time.Duration
		body    func() io.Reader
		wantErr error
		within  time.Duration
	}{
		{
			name: "budget exhausted longer than MaxWait", maxWait: 300 * time.Millisecond,
			body:    func() io.Reader { return bytes.NewReader(randomBytes(1000)) },
			wantErr: ErrMemoryWait, within: 5 * time.Second,
		},
		{
			name: "client gone while waiting", maxWait: time.Minute,
			body: func() io.Reader {
				return io.MultiReader(bytes.NewReader([]byte("abc")), &errReader{syscall.ECONNRESET})
			},
			wantErr: ErrRead, within: 5 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			budget := NewBufferBudget(64*mib, tt.maxWait)
			hog := budget.Open() // the oldest request holds all memory
			defer hog.Close()
			mustAcquire(t, hog, 64*mib)
			fake := newFake()
			u := New(fake, Options{PartSize: s3limits.MinPartSize, Concurrency: 1, Budget: budget})
			start := time.Now()
			_, err := u.Upload(context.Background(), Object{Bucket: "b", Key: "k", Size: -1}, tt.body())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Upload = %v, want %v", err, tt.wantErr)
			}
			if d := time.Since(start); d > tt.within {
				t.Errorf("Upload returned after %v, want within %v", d, tt.within)
			}
			if budget.Waiting() != 0 || budget.Used() != 64*mib {
				t.Errorf("waiting %d, used %d: the failed upload kept memory or its place", budget.Waiting(), budget.Used())
			}
			if len(fake.calls) != 0 {
				t.Errorf("S3 calls: %v", fake.calls)
			}
		})
	}
}

func TestPartReader(t *testing.T) {
	for _, n := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 17} {
		data := randomBytes(n)
		var p partBuf
		for p.n < n {
			if len(p.space()) == 0 {
				p.grow()
			}
			p.n += copy(p.space(), data[p.n:])
		}
		got, err := io.ReadAll(p.reader())
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("n=%d: Read gave %d bytes, err %v", n, len(got), err)
		}
		r := p.reader()
		var buf bytes.Buffer
		if _, err := r.Seek(int64(n/2), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := r.WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), data[n/2:]) {
			t.Errorf("n=%d: WriteTo after Seek gave %d bytes, err %v", n, buf.Len(), err)
		}
		p.free()
	}
}
