// Package storelimit limits attempts per key across every process that
// shares one store: a fixed-window counter per key, kept in a
// Caddy storage (certmagic.Storage: the file system on a shared volume, or
// any storage module the operator runs), updated under the store's lock.
//
// It is meant for limits that must hold globally, such as sign-in attempts
// on one account across all instances behind a load balancer, where a
// per-process limiter would grant N times the allowance. Each Allow costs a
// lock, a read and a write in the store, so put a per-process limiter in
// front of it to shed floods first.
//
// When the store fails (or does not answer within Timeout), Allow lets the
// attempt through and reports the error through OnError: a store outage
// must not lock every user out. The per-process limits still apply.
//
// Counters live under Prefix, one small value per key (keys are stored as
// SHA-256 hashes, so no email address appears in the store). Values whose
// window has passed are deleted by a sweep run at most once per window
// from Allow.
package storelimit

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sync"
	"time"
)

// Store is the part of certmagic.Storage the limiter uses.
type Store interface {
	Lock(ctx context.Context, name string) error
	Unlock(ctx context.Context, name string) error
	Store(ctx context.Context, key string, value []byte) error
	Load(ctx context.Context, key string) ([]byte, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string, recursive bool) ([]string, error)
}

// DefaultTimeout bounds one Allow's work in the store.
const DefaultTimeout = 3 * time.Second

// Limiter allows Limit attempts per key in each Window, counted in Store.
// Set the fields before use; it is safe for concurrent use.
type Limiter struct {
	Store  Store
	Prefix string        // e.g. "upload_gateway/login_per_account"
	Limit  int           // attempts per window; at least 1
	Window time.Duration // e.g. one minute
	// Timeout bounds one Allow's work in the store. Default DefaultTimeout.
	Timeout time.Duration
	// OnError, when set, is told about store failures (the attempt was
	// allowed).
	OnError func(error)
	// Now returns the current time; default time.Now.
	Now func() time.Time

	mu        sync.Mutex
	lastSweep time.Time
}

// counter is the stored value of one key.
type counter struct {
	Start int64 `json:"start"` // window start, Unix nanoseconds
	Count int   `json:"count"`
}

// Allow counts one attempt for key. It reports whether the attempt is
// within the limit and, if not, how long until the key's window ends.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(l.Timeout, DefaultTimeout))
	defer cancel()
	ok, retryAfter, err := l.allow(ctx, key)
	if err != nil {
		l.report(fmt.Errorf("storelimit: %s: %w", l.Prefix, err))
		return true, 0
	}
	l.maybeSweep(ctx)
	return ok, retryAfter
}

func (l *Limiter) allow(ctx context.Context, key string) (bool, time.Duration, error) {
	sum := sha256.Sum256([]byte(key))
	name := path.Join(l.Prefix, hex.EncodeToString(sum[:]))
	if err := l.Store.Lock(ctx, name); err != nil {
		return false, 0, fmt.Errorf("locking: %w", err)
	}
	defer func() { _ = l.Store.Unlock(context.WithoutCancel(ctx), name) }()
	now := l.now()
	raw, err := l.Store.Load(ctx, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, 0, fmt.Errorf("loading: %w", err)
	}
	var c counter
	if json.Unmarshal(raw, &c) != nil {
		c = counter{} // a missing or damaged value starts a new window
	}
	start := time.Unix(0, c.Start)
	if c.Start == 0 || !now.Before(start.Add(l.Window)) || start.After(now) {
		c = counter{Start: now.UnixNano()}
		start = now
	}
	if c.Count >= l.Limit {
		return false, start.Add(l.Window).Sub(now), nil
	}
	c.Count++
	raw, _ = json.Marshal(c)
	if err := l.Store.Store(ctx, name, raw); err != nil {
		return false, 0, fmt.Errorf("storing: %w", err)
	}
	return true, 0, nil
}

// maybeSweep deletes counters whose window has passed, at most once per
// window per Limiter.
func (l *Limiter) maybeSweep(ctx context.Context) {
	now := l.now()
	l.mu.Lock()
	if now.Sub(l.lastSweep) < l.Window {
		l.mu.Unlock()
		return
	}
	l.lastSweep = now
	l.mu.Unlock()
	if err := l.Sweep(ctx); err != nil {
		l.report(fmt.Errorf("storelimit: sweeping %s: %w", l.Prefix, err))
	}
}

// Sweep deletes the counters whose window has passed.
func (l *Limiter) Sweep(ctx context.Context) error {
	names, err := l.Store.List(ctx, l.Prefix, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	now := l.now()
	for _, name := range names {
		raw, err := l.Store.Load(ctx, name)
		if err != nil {
			continue // a lock file, or deleted meanwhile
		}
		var c counter
		if json.Unmarshal(raw, &c) != nil || !now.Before(time.Unix(0, c.Start).Add(l.Window)) {
			_ = l.Store.Delete(ctx, name)
		}
	}
	return nil
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Limiter) report(err error) {
	if l.OnError != nil {
		l.OnError(err)
	}
}
