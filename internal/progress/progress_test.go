package progress

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTracker(max int, ttl time.Duration) (*Tracker, *clock) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	tr := New(max, ttl)
	tr.now = c.now
	return tr, c
}

func TestLifecycle(t *testing.T) {
	tr, c := newTracker(10, time.Minute)
	if got := tr.Get("a"); got != (Status{State: StateStarting}) {
		t.Fatalf("unknown id: %+v", got)
	}
	u, err := tr.Start("a", 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(u.Reader(strings.NewReader("0123"))); err != nil {
		t.Fatal(err)
	}
	if got, want := tr.Get("a"), (Status{State: StateUploading, Received: 4, Size: 10}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, err := tr.Start("a", 10); !errors.Is(err, ErrInUse) {
		t.Fatalf("second start of a running id: %v, want ErrInUse", err)
	}
	tr.Finish(u, 201)
	if got := tr.Get("a"); got != (Status{State: StateDone}) {
		t.Fatalf("finished: %+v", got)
	}
	c.t = c.t.Add(time.Minute)
	if got := tr.Get("a"); got != (Status{State: StateStarting}) {
		t.Fatalf("expired: %+v", got)
	}
	if tr.Len() != 0 {
		t.Fatalf("expired entry kept: %d entries", tr.Len())
	}
}

func TestFinishStatus(t *testing.T) {
	tests := []struct {
		status int
		want   Status
	}{
		{0, Status{State: StateDone}},
		{200, Status{State: StateDone}},
		{303, Status{State: StateDone}},
		{401, Status{State: StateError, Status: 401}},
		{413, Status{State: StateError, Status: 413}},
		{502, Status{State: StateError, Status: 502}},
	}
	for _, tt := range tests {
		tr, _ := newTracker(10, time.Minute)
		u, _ := tr.Start("x", 1)
		tr.Finish(u, tt.status)
		if got := tr.Get("x"); got != tt.want {
			t.Errorf("status %d: got %+v, want %+v", tt.status, got, tt.want)
		}
	}
}

func TestBounded(t *testing.T) {
	tr, c := newTracker(2, time.Minute)
	a, _ := tr.Start("a", 1)
	if _, err := tr.Start("b", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Start("c", 1); !errors.Is(err, ErrFull) {
		t.Fatalf("third running upload: %v, want ErrFull", err)
	}
	// A finished entry makes room, oldest first, even before it expired.
	tr.Finish(a, 200)
	c.t = c.t.Add(time.Second)
	if _, err := tr.Start("c", 1); err != nil {
		t.Fatalf("after a finished: %v", err)
	}
	if got := tr.Get("a"); got.State != StateStarting {
		t.Errorf("evicted entry: %+v", got)
	}
	if tr.Len() != 2 {
		t.Errorf("%d entries, want 2", tr.Len())
	}
}

func TestReuseFinishedID(t *testing.T) {
	tr, _ := newTracker(10, time.Minute)
	u, _ := tr.Start("a", 1)
	tr.Finish(u, 413)
	if _, err := tr.Start("a", 5); err != nil {
		t.Fatalf("reusing a finished id: %v", err)
	}
	if got := tr.Get("a"); got != (Status{State: StateUploading, Size: 5}) {
		t.Errorf("got %+v", got)
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"":                        false,
		"abc-DEF_09.x":            true,
		strings.Repeat("a", 64):   true,
		strings.Repeat("a", 65):   false,
		"a b":                     false,
		"a/b":                     false,
		"<script>":                false,
		"9f1c0d2e-uuid-like-0001": true,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestMarshal(t *testing.T) {
	tests := []struct {
		name     string
		s        Status
		callback string
		want     string
		ok       bool
	}{
		{"starting", Status{State: StateStarting}, "", `{"state":"starting"}`, true},
		{"uploading", Status{State: StateUploading, Received: 5, Size: 9}, "", `{"state":"uploading","received":5,"size":9}`, true},
		{"uploading nothing yet", Status{State: StateUploading, Size: 9}, "", `{"state":"uploading","received":0,"size":9}`, true},
		{"unknown size", Status{State: StateUploading, Received: 5, Size: -1}, "", `{"state":"uploading","received":5,"size":0}`, true},
		{"error", Status{State: StateError, Status: 413}, "", `{"state":"error","status":413}`, true},
		{"jsonp", Status{State: StateDone}, "jQuery123_456", `jQuery123_456({"state":"done"});`, true},
		{"jsonp dotted", Status{State: StateDone}, "app.progress", `app.progress({"state":"done"});`, true},
		{"jsonp script", Status{State: StateDone}, "alert(1)//", "", false},
		{"jsonp digit first", Status{State: StateDone}, "1a", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Marshal(tt.s, tt.callback)
			if string(got) != tt.want || ok != tt.ok {
				t.Errorf("Marshal = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
