package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrBusy is returned by [Gate.Enter] when all slots are taken and the
// caller could not wait for one.
var ErrBusy = errors.New("ratelimit: too much concurrent work")

// Gate bounds how many callers do some expensive work (a bcrypt
// comparison, say) at the same time, whoever they are. A caller that finds
// every slot taken waits for one, but only for a short time and only if
// few others are already waiting; otherwise it is refused at once, so that
// a flood of requests is answered quickly instead of piling up. Create it
// with [NewGate]; it is safe for concurrent use.
type Gate struct {
	slots   chan struct{}
	waiters chan struct{}
	maxWait time.Duration
}

// NewGate returns a Gate with n slots, where at most maxWaiters callers
// wait up to maxWait each for a free slot. It panics if n is less than 1
// or maxWaiters or maxWait is negative.
func NewGate(n, maxWaiters int, maxWait time.Duration) *Gate {
	if n < 1 || maxWaiters < 0 || maxWait < 0 {
		panic(fmt.Sprintf("ratelimit: invalid gate: %d slots, %d waiters, wait %v", n, maxWaiters, maxWait))
	}
	return &Gate{
		slots:   make(chan struct{}, n),
		waiters: make(chan struct{}, maxWaiters),
		maxWait: maxWait,
	}
}

// Enter takes a slot. It returns a function that gives the slot back,
// which the caller must call once the work is done. When no slot is free
// within the wait allowed, or too many callers wait already, it returns an
// error wrapping [ErrBusy]; when ctx ends first, ctx's error.
func (g *Gate) Enter(ctx context.Context) (release func(), err error) {
	select {
	case g.slots <- struct{}{}:
		return g.release, nil
	default:
	}
	select {
	case g.waiters <- struct{}{}:
		defer func() { <-g.waiters }()
	default:
		return nil, ErrBusy
	}
	timer := time.NewTimer(g.maxWait)
	defer timer.Stop()
	select {
	case g.slots <- struct{}{}:
		return g.release, nil
	case <-timer.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// InUse returns the number of slots taken.
func (g *Gate) InUse() int { return len(g.slots) }

// Size returns the number of slots.
func (g *Gate) Size() int { return cap(g.slots) }

func (g *Gate) release() { <-g.slots }
