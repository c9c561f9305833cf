package ratelimit

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// fakeClock is a clock that only moves when told to. It is safe for
// concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newTestLimiter returns a limiter driven by a fake clock.
func newTestLimiter(t *testing.T, r rate.Limit, burst, maxKeys int) (*Limiter, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	l := New(r, burst, maxKeys)
	l.Now = clock.Now
	return l, clock
}

func TestAllow(t *testing.T) {
	// step is one call to Allow after advancing the clock by wait.
	type step struct {
		wait      time.Duration
		key       string
		wantOK    bool
		wantRetry time.Duration
	}
	tests := []struct {
		name  string
		rate  rate.Limit
		burst int
		steps []step
	}{
		{
			name:  "burst then denied",
			rate:  rate.Every(10 * time.Second),
			burst: 3,
			steps: []step{
				{0, "a", true, 0},
				{0, "a", true, 0},
				{0, "a", true, 0},
				{0, "a", false, 10 * time.Second},
				{4 * time.Second, "a", false, 6 * time.Second},
			},
		},
		{
			name:  "denied calls take nothing",
			rate:  rate.Every(time.Minute),
			burst: 1,
			steps: []step{
				{0, "a", true, 0},
				{0, "a", false, time.Minute},
				{0, "a", false, time.Minute},
				{0, "a", false, time.Minute},
				{time.Minute, "a", true, 0},
			},
		},
		{
			name:  "refill one token",
			rate:  1,
			burst: 2,
			steps: []step{
				{0, "a", true, 0},
				{0, "a", true, 0},
				{0, "a", false, time.Second},
				{time.Second, "a", true, 0},
				{0, "a", false, time.Second},
			},
		},
		{
			name:  "partial refill",
			rate:  2, // one token per 500ms
			burst: 1,
			steps: []step{
				{0, "a", true, 0},
				{200 * time.Millisecond, "a", false, 300 * time.Millisecond},
				{300 * time.Millisecond, "a", true, 0},
			},
		},
		{
			name:  "refill stops at burst",
			rate:  1,
			burst: 2,
			steps: []step{
				{0, "a", true, 0},
				{time.Hour, "a", true, 0},
				{0, "a", true, 0},
				{0, "a", false, time.Second},
			},
		},
		{
			name:  "keys are independent",
			rate:  rate.Every(time.Hour),
			burst: 1,
			steps: []step{
				{0, "a", true, 0},
				{0, "a", false, time.Hour},
				{0, "b", true, 0},
				{0, "b", false, time.Hour},
				{0, "a", false, time.Hour},
			},
		},
		{
			name:  "clock stepping back adds nothing",
			rate:  1,
			burst: 1,
			steps: []step{
				{0, "a", true, 0},
				{-time.Hour, "a", false, time.Second},
				{time.Hour, "a", false, time.Second},
				{time.Second, "a", true, 0},
			},
		},
		{
			name:  "infinite rate",
			rate:  rate.Inf,
			burst: 1,
			steps: []step{
				{0, "a", true, 0},
				{0, "a", true, 0},
				{0, "a", true, 0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clock := newTestLimiter(t, tt.rate, tt.burst, 10)
			for i, s := range tt.steps {
				clock.Advance(s.wait)
				ok, retry := l.Allow(s.key)
				if ok != s.wantOK || retry != s.wantRetry {
					t.Errorf("step %d: Allow(%q) after %v = (%v, %v), want (%v, %v)",
						i, s.key, s.wait, ok, retry, s.wantOK, s.wantRetry)
				}
			}
		})
	}
}

func TestIdleKeysForgotten(t *testing.T) {
	l, clock := newTestLimiter(t, rate.Every(time.Minute), 2, 100)
	for i := range 10 {
		l.Allow("key" + strconv.Itoa(i))
	}
	if got := l.Len(); got != 10 {
		t.Fatalf("Len() = %d after 10 keys, want 10", got)
	}

	// One token was taken per key: refilled after a minute, and then the
	// buckets are indistinguishable from new ones.
	clock.Advance(time.Minute)
	l.Allow("fresh")
	if got := l.Len(); got != 1 {
		t.Errorf("Len() = %d after the others refilled, want 1", got)
	}
}

func TestMemoryBounded(t *testing.T) {
	const maxKeys = 1000
	l, clock := newTestLimiter(t, rate.Every(time.Hour), 5, maxKeys)
	for i := range 100_000 {
		l.Allow("203.0.113." + strconv.Itoa(i))
		if i%1000 == 0 {
			clock.Advance(time.Millisecond)
		}
		if n := len(l.buckets); n > maxKeys {
			t.Fatalf("after %d keys: %d buckets, want at most %d", i+1, n, maxKeys)
		}
	}
	if n, m := len(l.buckets), l.lru.Len(); n != maxKeys || m != maxKeys {
		t.Errorf("map holds %d and list %d buckets, want %d each", n, m, maxKeys)
	}
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	l, _ := newTestLimiter(t, rate.Every(time.Hour), 1, 2)
	l.Allow("a")
	l.Allow("b")
	l.Allow("a") // a is now more recent than b
	l.Allow("c") // evicts b

	if ok, _ := l.Allow("a"); ok {
		t.Errorf("a was evicted, want b evicted")
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Errorf("b kept its empty bucket, want it evicted and new")
	}
}

func TestConcurrent(t *testing.T) {
	const (
		burst      = 5
		keys       = 20
		goroutines = 8
		calls      = 500
	)
	// The clock does not move, so exactly burst calls per key succeed no
	// matter how the goroutines interleave.
	l, _ := newTestLimiter(t, rate.Every(time.Hour), burst, keys)
	var allowed [keys]atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				k := (g + i) % keys
				if ok, _ := l.Allow(strconv.Itoa(k)); ok {
					allowed[k].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	for k := range allowed {
		if got := allowed[k].Load(); got != burst {
			t.Errorf("key %d: %d calls allowed, want %d", k, got, burst)
		}
	}
}

func TestConcurrentRealClock(t *testing.T) {
	// With more keys than room and the real clock, this is for the race
	// detector: nothing is asserted but the bound.
	l := New(1000, 3, 50)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				l.Allow(strconv.Itoa(g*1000 + i%200))
				_ = l.Len()
			}
		}()
	}
	wg.Wait()
	if n := l.Len(); n > 50 {
		t.Errorf("Len() = %d, want at most 50", n)
	}
}

func TestNewPanicsOnInvalidConfig(t *testing.T) {
	tests := []struct {
		name    string
		rate    rate.Limit
		burst   int
		maxKeys int
	}{
		{"zero rate", 0, 1, 1},
		{"negative rate", -1, 1, 1},
		{"zero burst", 1, 0, 1},
		{"zero max keys", 1, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%v, %d, %d) did not panic", tt.rate, tt.burst, tt.maxKeys)
				}
			}()
			New(tt.rate, tt.burst, tt.maxKeys)
		})
	}
}
