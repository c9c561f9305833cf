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

// The connection's deadline is set to the allowance before each read and
// cleared after it.
func TestReaderSetsDeadlines(t *testing.T) {
	clock := time.Unix(0, 0)
	var got []time.Time
	r := New(&script{steps: []step{{2 * time.Second, 0}}, clock: &clock}, 5*time.Second, 0, func(d time.Time) error {
		got = append(got, d)
		return nil
	})
	r.now = func() time.Time { return clock }
	_, _ = r.Read(make([]byte, 1))
	if len(got) != 2 || !got[0].Equal(time.Unix(5, 0)) || !got[1].IsZero() {
		t.Errorf("deadlines %v, want [5s zero]", got)
	}
}
