// Package ratelimit limits how often one key (a client address, an email
// address) may do something, such as attempt a login, with one token bucket
// per key and a hard bound on memory.
//
// # Behaviour
//
// Every key has a bucket that holds at most burst tokens and refills at a
// steady rate ([rate.Every] turns "one per 10s" into a [rate.Limit]); a new
// key starts with a full one. A call [Limiter.Allow] denies takes nothing,
// so a client that keeps hammering is not pushed further back, but it gets
// no extra attempts either.
//
// # Memory
//
// The limiter keeps at most maxKeys buckets, in least-recently-used order:
//
//   - a bucket that has refilled completely is forgotten, because a new
//     full bucket behaves exactly like it. Idle keys therefore cost nothing
//     once burst/rate has passed;
//   - when a new key arrives and maxKeys buckets are in use, the bucket used
//     least recently is evicted, even if it is not full.
//
// Each bucket costs about 150 bytes plus its key, so maxKeys 100000 with
// keys such as IP addresses stays under 20 MB.
//
// # Considerations
//
// Eviction is the price of a memory bound: a client that can make up more
// than maxKeys distinct keys within burst/rate (many source addresses, or
// made-up user names) pushes older buckets out and gets their keys a fresh
// burst. Choose maxKeys well above the number of legitimate clients active
// within that time, and for logins limit by client address and by account
// name with separate limiters, so that neither alone can be dodged.
//
// The state lives in process memory only: several gateway instances each
// allow the full rate, and a restart forgets everything.
//
// # Client addresses
//
// Key clients by [ClientKey] of their address: IPv6 clients by their /64,
// which one host can fill with addresses at will. The address must be one
// the client cannot choose: behind a proxy, the one the proxy saw, taken
// from a forwarding header only when the request comes from the proxy.
//
// # Concurrent work
//
// A rate per key does not bound the total: many keys (many source
// addresses) at their own rates can still overload the process. [Gate]
// bounds how many callers do some expensive work at once and refuses the
// excess quickly.
package ratelimit

import (
	"container/list"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is a set of token buckets, one per key. It is safe for concurrent
// use. Create it with [New].
type Limiter struct {
	// Now returns the current time. It defaults to time.Now; tests replace
	// it with a fake clock. Set it before the first call to Allow and do not
	// change it afterwards.
	Now func() time.Time

	rate    rate.Limit
	burst   float64
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*list.Element // of *bucket
	lru     list.List                // front: most recently used
}

// bucket is the state of one key.
type bucket struct {
	key    string
	tokens float64   // at last
	last   time.Time // time of the last refill
	fullAt time.Time // when tokens reaches burst again
}

// New returns a Limiter that allows each key burst events at once and then
// r events per second, and keeps at most maxKeys keys in memory.
//
// r may be [rate.Inf], in which case Allow always reports true and nothing
// is stored. New panics if r is not positive, or burst or maxKeys is less
// than 1: those are configuration mistakes that must be caught when the
// configuration is validated.
func New(r rate.Limit, burst int, maxKeys int) *Limiter {
	if !(r > 0) || burst < 1 || maxKeys < 1 {
		panic(fmt.Sprintf("ratelimit: invalid limiter: rate %v, burst %d, max keys %d", r, burst, maxKeys))
	}
	return &Limiter{
		Now:     time.Now,
		rate:    r,
		burst:   float64(burst),
		maxKeys: maxKeys,
		buckets: make(map[string]*list.Element),
	}
}

// Allow takes one token from key's bucket. It reports whether there was
// one and, if there was not, how long until there is; retryAfter is zero
// when ok is true.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if l.rate == rate.Inf {
		return true, 0
	}
	now := l.Now()

	l.mu.Lock()
	defer l.mu.Unlock()

	l.forgetFull(now)
	b := l.bucket(key, now)
	if b.tokens >= 1 {
		b.tokens--
		ok = true
	} else {
		retryAfter = l.duration(1 - b.tokens)
	}
	b.fullAt = b.last.Add(l.duration(l.burst - b.tokens))
	return ok, retryAfter
}

// Len returns the number of keys currently held in memory.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// bucket returns key's bucket refilled up to now, creating it (and evicting
// the least recently used one if the limiter is full) if needed, and marks
// it as the most recently used.
func (l *Limiter) bucket(key string, now time.Time) *bucket {
	if e, found := l.buckets[key]; found {
		b := e.Value.(*bucket)
		if elapsed := now.Sub(b.last); elapsed > 0 { // a clock that steps back adds nothing
			b.tokens = math.Min(l.burst, b.tokens+elapsed.Seconds()*float64(l.rate))
			b.last = now
		}
		l.lru.MoveToFront(e)
		return b
	}
	for len(l.buckets) >= l.maxKeys {
		l.remove(l.lru.Back())
	}
	b := &bucket{key: key, tokens: l.burst, last: now}
	l.buckets[key] = l.lru.PushFront(b)
	return b
}

// forgetFull drops buckets that have refilled completely, starting with the
// least recently used one and stopping at the first that has not. Buckets
// further up the list that are already full are found by later calls, or
// evicted first when space runs out; the cost per call stays O(1)
// amortised.
func (l *Limiter) forgetFull(now time.Time) {
	for e := l.lru.Back(); e != nil; e = l.lru.Back() {
		if e.Value.(*bucket).fullAt.After(now) {
			return
		}
		l.remove(e)
	}
}

func (l *Limiter) remove(e *list.Element) {
	delete(l.buckets, e.Value.(*bucket).key)
	l.lru.Remove(e)
}

// duration returns how long the bucket takes to gain n tokens, rounded up
// to the nanosecond.
func (l *Limiter) duration(n float64) time.Duration {
	if n <= 0 {
		return 0
	}
	secs := n / float64(l.rate)
	if secs >= math.MaxInt64/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Ceil(secs * float64(time.Second)))
}
