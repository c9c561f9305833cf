// Package progress tracks how far uploads have come, for browsers that poll
// while they post a form, and answers the polls the way
// nginx-upload-progress-module does, so that existing progress bars
// (jQuery plugins and the like) work unchanged:
//
//	{"state":"starting"}                                  unknown id (not started yet, or expired)
//	{"state":"uploading","received":1234,"size":56789}    received so far of Content-Length
//	{"state":"done"}                                      the upload finished with a status < 400
//	{"state":"error","status":413}                        it finished with that status
//
// An upload is named by the client with an `X-Progress-ID` (query parameter
// or header): 1 to 64 letters, digits, `-`, `_` or `.`.
//
// # Implementation
//
// A [Tracker] holds at most a fixed number of entries. A finished upload's
// entry stays for a while (the expiry) so that a last poll sees done or
// error, then goes. When the tracker is full, expired entries and then the
// oldest finished ones make room; when every entry is an upload still
// running, a new upload is not tracked (it goes on; its polls say starting).
// Received bytes are counted with an atomic add per read, no lock.
//
// # Considerations
//
// The state lives in the memory of the process that receives the upload.
// With several instances behind a load balancer, a poll must reach the
// instance that holds the upload: route by the progress id (hash on the
// `X-Progress-ID` query parameter) or keep clients on one instance (sticky
// sessions), as nginx-upload-progress-module requires too.
package progress

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// States of an upload, as nginx-upload-progress-module names them.
const (
	StateStarting  = "starting"
	StateUploading = "uploading"
	StateDone      = "done"
	StateError     = "error"
)

// MaxIDLen is the longest progress id accepted.
const MaxIDLen = 64

// ErrInvalidID is returned for a progress id that is empty, too long or has
// characters other than letters, digits, `-`, `_` and `.`.
var ErrInvalidID = errors.New("invalid progress id")

// ErrFull is returned by [Tracker.Start] when every entry is an upload still
// running.
var ErrFull = errors.New("too many uploads tracked")

// ErrInUse is returned by [Tracker.Start] when an upload with the same id is
// running.
var ErrInUse = errors.New("progress id in use")

// Status is what a poll answers.
type Status struct {
	State    string // one of the State constants
	Received int64  // bytes received so far, while uploading
	Size     int64  // the request's Content-Length, while uploading; -1 if unknown
	Status   int    // the HTTP status, on error
}

// Tracker holds the progress of uploads. Its methods are safe for
// concurrent use.
type Tracker struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*Upload
}

// New returns a tracker holding at most max entries (default 10,000 when
// max <= 0), each kept for ttl after its upload finished (default 60 s when
// ttl <= 0).
func New(max int, ttl time.Duration) *Tracker {
	if max <= 0 {
		max = 10000
	}
	if ttl <= 0 {
		ttl = time.Minute
	}
	return &Tracker{max: max, ttl: ttl, now: time.Now, entries: make(map[string]*Upload)}
}

// Upload is one tracked upload.
type Upload struct {
	size     int64
	received atomic.Int64

	// Guarded by the tracker's mutex.
	status   int       // 0 while running
	finished time.Time // when Finish was called
}

// ValidID reports whether id may name an upload.
func ValidID(id string) bool { return plainName(id, MaxIDLen, "-_.") }

// plainName reports whether s has 1 to maxLen ASCII letters, digits and bytes
// of extra, and nothing else.
func plainName(s string, maxLen int, extra string) bool {
	return s != "" && len(s) <= maxLen && !strings.ContainsFunc(s, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(extra, c))
	})
}

// Start begins tracking the upload id of size bytes (-1 when unknown). It
// returns [ErrInvalidID], [ErrInUse] when an upload with this id is running,
// or [ErrFull]. A finished upload's id may be used again.
func (t *Tracker) Start(id string, size int64) (*Upload, error) {
	if !ValidID(id) {
		return nil, ErrInvalidID
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.entries[id]; ok {
		if old.status == 0 {
			return nil, ErrInUse
		}
		delete(t.entries, id)
	}
	if len(t.entries) >= t.max && !t.makeRoom() {
		return nil, ErrFull
	}
	u := &Upload{size: size}
	t.entries[id] = u
	return u, nil
}

// makeRoom drops expired entries, or else the oldest finished one, and
// reports whether there is room for one more. Called with t.mu held.
func (t *Tracker) makeRoom() bool {
	now := t.now()
	var oldestID string
	var oldest time.Time
	for id, u := range t.entries {
		if u.status == 0 {
			continue
		}
		if now.Sub(u.finished) >= t.ttl {
			delete(t.entries, id)
			continue
		}
		if oldestID == "" || u.finished.Before(oldest) {
			oldestID, oldest = id, u.finished
		}
	}
	if len(t.entries) < t.max {
		return true
	}
	if oldestID == "" {
		return false
	}
	delete(t.entries, oldestID)
	return true
}

// Finish records that u ended with the HTTP status the client got: done
// below 400, error from 400 on. A status of 0 counts as 200.
func (t *Tracker) Finish(u *Upload, status int) {
	if status == 0 {
		status = 200
	}
	t.mu.Lock()
	u.status = status
	u.finished = t.now()
	t.mu.Unlock()
}

// Get returns the progress of upload id: starting when it is unknown or its
// entry has expired.
func (t *Tracker) Get(id string) Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	u, ok := t.entries[id]
	if !ok {
		return Status{State: StateStarting}
	}
	switch {
	case u.status == 0:
		return Status{State: StateUploading, Received: u.received.Load(), Size: u.size}
	case t.now().Sub(u.finished) >= t.ttl:
		delete(t.entries, id)
		return Status{State: StateStarting}
	case u.status < 400:
		return Status{State: StateDone}
	}
	return Status{State: StateError, Status: u.status}
}

// Len returns the number of entries held.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// Reader returns r counting what is read from it as received by u.
func (u *Upload) Reader(r io.Reader) io.Reader {
	return &countingReader{r: r, u: u}
}

type countingReader struct {
	r io.Reader
	u *Upload
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.u.received.Add(int64(n))
	return n, err
}

// Marshal encodes s as JSON, or as JSONP `callback(<json>);` when callback
// is not empty. A callback that is not a plain JavaScript name
// (letters, digits, `_`, `$`, `.`, at most 64) is refused with ok false, so
// that a poll cannot be turned into a script of the caller's choosing.
func Marshal(s Status, callback string) (body []byte, ok bool) {
	var b []byte
	switch s.State {
	case StateUploading:
		// received is sent even when 0: progress bars divide it by size.
		b = fmt.Appendf(nil, `{"state":"uploading","received":%d,"size":%d}`, s.Received, max(s.Size, 0))
	case StateError:
		b = fmt.Appendf(nil, `{"state":"error","status":%d}`, s.Status)
	default:
		b, _ = json.Marshal(map[string]string{"state": s.State})
	}
	if callback == "" {
		return b, true
	}
	if !validCallback(callback) {
		return nil, false
	}
	return fmt.Appendf(nil, "%s(%s);", callback, b), true
}

func validCallback(s string) bool {
	return plainName(s, 64, "_$.") && (s[0] < '0' || s[0] > '9')
}
