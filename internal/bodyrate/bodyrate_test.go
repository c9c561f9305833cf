package bodyrate

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// script is a body whose reads take the given times and return the given
// byte counts.
type script struct {
	steps []step
	clock *time.Time
}

type step struct {
	wait time.Duration
	n    int
}

func (s *script) Read(p []byte) (int, error) {
	if len(s.steps) == 0 {
		return 0, io.EOF
	}
	st := s.steps[0]
	s.steps = s.steps[1:]
	*s.clock = s.clock.Add(st.wait)
	return st.n, nil
}

func TestReader(t *testing.T) {
	const timeout = 10 * time.Second
	tests := []struct {
		name    string
		minRate int64
		steps   []step
		wantErr bool
	}{
		{"steady at the minimum rate", 1000, repeat(200, step{time.Second, 1000}), false},
		{"bursts within the allowance", 1000, repeat(20, step{9 * time.Second, 9000}), false},
		{"one long stall", 1000, []step{{time.Second, 1000}, {11 * time.Second, 1}}, true},
		{"slowloris: a byte every 9 s", 1000, repeat(5, step{9 * time.Second, 1}), true},
		{"half the minimum rate", 1000, repeat(40, step{time.Second, 500}), true},
		{"no rate: stalls shorter than the timeout pass", 0, repeat(30, step{9 * time.Second, 1}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := time.Unix(0, 0)
			r := New(&script{steps: tt.steps, clock: &clock}, timeout, tt.minRate, nil)
			r.now = func() time.Time { return clock }
			_, err := io.Copy(io.Discard, r)
			if got := err != nil; got != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("error %v does not wrap os.ErrDeadlineExceeded", err)
			}
		})
	}
}

func repeat(n int, s step) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// A Read blocked on a silent client is interrupted through the
// connection's deadline once the allowance is used up; a client that keeps
// sending never sees the deadline touched.
func TestReaderInterruptsBlockedRead(t *testing.T) {
	pr, pw := io.Pipe()
	var set []time.Time
	r := New(pr, 200*time.Millisecond, 0, func(d time.Time) error {
		set = append(set, d)
		pw.CloseWithError(&os.PathError{Op: "read", Path: "conn", Err: os.ErrDeadlineExceeded})
		return nil
	})
	go func() {
		for range 5 {
			pw.Write([]byte("x"))
			time.Sleep(50 * time.Millisecond)
		}
	}()
	start := time.Now()
	buf := make([]byte, 1)
	for range 5 {
		if _, err := r.Read(buf); err != nil {
			t.Fatalf("a client sending every 50 ms was cut: %v", err)
		}
	}
	if len(set) != 0 {
		t.Fatalf("deadline touched while the client was sending: %v", set)
	}
	_, err := r.Read(buf) // the client has gone silent
	if !errors.Is(err, os.ErrDeadlineExceeded) || len(set) != 1 {
		t.Fatalf("Read = %v after %v with deadlines %v, want a deadline error", err, time.Since(start), set)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("interrupted after %v", d)
	}
}
