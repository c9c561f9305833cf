package ratelimit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestGateBoundsConcurrentWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGate(2, 1, 50*time.Millisecond)
		r1, err := g.Enter(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		r2, err := g.Enter(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if g.InUse() != 2 {
			t.Fatalf("InUse = %d, want 2", g.InUse())
		}

		// One caller may wait; while it does, a second is refused at once.
		waited := make(chan error, 1)
		start := time.Now()
		go func() {
			release, err := g.Enter(context.Background())
			if err == nil {
				release()
			}
			waited <- err
		}()
		synctest.Wait() // the caller waits for a slot
		if len(g.waiters) != 1 {
			t.Fatalf("%d waiters, want 1", len(g.waiters))
		}
		if _, err := g.Enter(context.Background()); !errors.Is(err, ErrBusy) {
			t.Errorf("third caller while one waits: %v, want ErrBusy", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("refusal took %v, want it at once", d)
		}
		if err := <-waited; !errors.Is(err, ErrBusy) {
			t.Errorf("waiter past maxWait: %v, want ErrBusy", err)
		}
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("the waiter gave up after %v, want maxWait", d)
		}

		// A released slot goes to the next caller.
		r1()
		r3, err := g.Enter(context.Background())
		if err != nil {
			t.Fatalf("after a release: %v", err)
		}
		r2()
		r3()
		if g.InUse() != 0 {
			t.Errorf("InUse = %d after all releases", g.InUse())
		}
	})
}

func TestGateWaiterGetsReleasedSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGate(1, 4, 5*time.Second)
		release, _ := g.Enter(context.Background())
		start := time.Now()
		time.AfterFunc(20*time.Millisecond, release)
		r, err := g.Enter(context.Background())
		if err != nil {
			t.Fatalf("waiter: %v", err)
		}
		if d := time.Since(start); d != 20*time.Millisecond {
			t.Errorf("the waiter got the slot after %v, want at its release", d)
		}
		r()
	})
}

func TestGateWaiterLeavesWhenContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGate(1, 4, time.Minute)
		release, _ := g.Enter(context.Background())
		defer release()
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, err := g.Enter(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Enter with a cancelled context: %v", err)
		}
		if d := time.Since(start); d != 20*time.Millisecond {
			t.Errorf("the waiter left after %v, want when its context ended", d)
		}
		if len(g.waiters) != 0 {
			t.Errorf("%d waiters left", len(g.waiters))
		}
	})
}

func TestGateUnderLoadNeverExceedsSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGate(3, 3, 10*time.Millisecond)
		var mu sync.Mutex
		inside, peak, busy := 0, 0, 0
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				release, err := g.Enter(context.Background())
				if err != nil {
					mu.Lock()
					busy++
					mu.Unlock()
					return
				}
				mu.Lock()
				inside++
				peak = max(peak, inside)
				mu.Unlock()
				time.Sleep(time.Millisecond)
				mu.Lock()
				inside--
				mu.Unlock()
				release()
			})
		}
		wg.Wait()
		if peak != 3 {
			t.Errorf("peak concurrency %d, want 3", peak)
		}
		if busy != 50-6 {
			t.Errorf("%d refused, want 44 (3 inside, 3 waiting)", busy)
		}
	})
}
