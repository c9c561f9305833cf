package storelimit

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is an in-memory Store; fail makes every call fail.
type memStore struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
	data  map[string][]byte
	fail  error
}

func newMemStore() *memStore {
	return &memStore{locks: map[string]*sync.Mutex{}, data: map[string][]byte{}}
}

func (m *memStore) Lock(_ context.Context, name string) error {
	if m.fail != nil {
		return m.fail
	}
	m.mu.Lock()
	l, ok := m.locks[name]
	if !ok {
		l = new(sync.Mutex)
		m.locks[name] = l
	}
	m.mu.Unlock()
	l.Lock()
	return nil
}

func (m *memStore) Unlock(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.locks[name].Unlock()
	return nil
}

func (m *memStore) Store(_ context.Context, key string, v []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data[key] = append([]byte(nil), v...)
	return nil
}

func (m *memStore) Load(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.data[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return v, nil
}

func (m *memStore) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.data, key)
	return nil
}

func (m *memStore) List(_ context.Context, prefix string, _ bool) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.data {
		if strings.HasPrefix(k, prefix+"/") {
			out = append(out, k)
		}
	}
	return out, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// Two limiters over one store are two instances: together they grant the
// limit once, not twice.
func TestLimitHoldsAcrossInstances(t *testing.T) {
	store, clk := newMemStore(), &clock{time.Unix(1_800_000_000, 0)}
	a := &Limiter{Store: store, Prefix: "p", Limit: 3, Window: time.Minute, Now: clk.now}
	b := &Limiter{Store: store, Prefix: "p", Limit: 3, Window: time.Minute, Now: clk.now}
	steps := []struct {
		l     *Limiter
		key   string
		ok    bool
		after time.Duration
	}{
		{a, "ana", true, 0},
		{b, "ana", true, 0},
		{a, "ana", true, 0},
		{b, "ana", false, time.Minute},
		{a, "ana", false, time.Minute},
		{b, "bob", true, 0}, // another account has its own count
	}
	for i, s := range steps {
		ok, after := s.l.Allow(s.key)
		if ok != s.ok || after != s.after {
			t.Errorf("step %d (%s): Allow = %v, %v; want %v, %v", i, s.key, ok, after, s.ok, s.after)
		}
	}
	clk.t = clk.t.Add(40 * time.Second)
	if ok, after := a.Allow("ana"); ok || after != 20*time.Second {
		t.Errorf("40s later: %v, %v; want refused for 20s", ok, after)
	}
	clk.t = clk.t.Add(20 * time.Second)
	if ok, _ := b.Allow("ana"); !ok {
		t.Errorf("a new window refused the first attempt")
	}
	for k := range store.data {
		if strings.Contains(k, "ana") || strings.Contains(k, "bob") {
			t.Errorf("stored key %q names the account", k)
		}
	}
}

// A store that fails lets attempts through and says why.
func TestStoreFailureFailsOpen(t *testing.T) {
	store := newMemStore()
	store.fail = errors.New("disk gone")
	var got []error
	l := &Limiter{Store: store, Prefix: "p", Limit: 1, Window: time.Minute, OnError: func(err error) { got = append(got, err) }}
	for range 3 {
		if ok, _ := l.Allow("ana"); !ok {
			t.Fatal("refused while the store is down")
		}
	}
	if len(got) != 3 || !strings.Contains(got[0].Error(), "disk gone") {
		t.Errorf("errors reported: %v", got)
	}
}

// Counters whose window passed are swept; live ones stay.
func TestSweepDeletesExpiredCounters(t *testing.T) {
	store, clk := newMemStore(), &clock{time.Unix(1_800_000_000, 0)}
	l := &Limiter{Store: store, Prefix: "p", Limit: 5, Window: time.Minute, Now: clk.now}
	l.Allow("old")
	clk.t = clk.t.Add(50 * time.Second)
	l.Allow("new")
	clk.t = clk.t.Add(20 * time.Second)
	if err := l.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(store.data) != 1 {
		t.Errorf("%d counters left, want 1 (the live one)", len(store.data))
	}
}
