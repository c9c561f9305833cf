package inflight

import "testing"

func TestLimiter(t *testing.T) {
	t.Parallel()
	l := New(2)
	r1, ok1 := l.Acquire("a")
	_, ok2 := l.Acquire("a")
	_, ok3 := l.Acquire("a")
	_, okB := l.Acquire("b")
	if !ok1 || !ok2 || ok3 || !okB {
		t.Fatalf("admitted %v %v %v %v, want true true false true", ok1, ok2, ok3, okB)
	}
	r1()
	r1() // twice is once
	if l.n["a"] != 1 {
		t.Errorf("in flight %d, want 1", l.n["a"])
	}
	if _, ok := l.Acquire("a"); !ok {
		t.Errorf("a released slot was not reusable")
	}
	if _, ok := New(0).Acquire("x"); !ok {
		t.Errorf("an unlimited limiter refused")
	}
}
