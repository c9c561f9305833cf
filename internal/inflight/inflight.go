// Package inflight caps how many requests one client has in progress at once.
package inflight

import "sync"

// Limiter counts requests in progress per key. The zero value is not
// usable; call [New].
type Limiter struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// New returns a Limiter that admits at most max requests per key at once.
// A max of 0 or less admits everything.
func New(max int) *Limiter {
	return &Limiter{max: max, n: map[string]int{}}
}

// Acquire admits one more request of key. It returns a function that ends
// the request, or ok false when the key already has max requests in progress.
func (l *Limiter) Acquire(key string) (release func(), ok bool) {
	if l.max <= 0 {
		return func() {}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[key] >= l.max {
		return nil, false
	}
	l.n[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.n[key]--; l.n[key] <= 0 {
				delete(l.n, key)
			}
		})
	}, true
}
