package tus

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestQuota: a user may have MaxOpenUploads unfinished uploads; one more
// is refused with 429 and a JSON code until one is finished, terminated
// or expired. Empty uploads and other users do not count.
func TestQuota(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxOpenUploads = 2 })
	other := e.handler(t, func(c *Config) { c.MaxOpenUploads = 2 })
	first := e.create(t, 10)
	e.create(t, 6*mib)
	e.create(t, 0) // stored at once: never open

	w := do(other, "POST", "/files/", nil, "Upload-Length", "10")

	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("third open upload: %d, want 429 (%s)", w.Code, w.Body)
	}
	var body struct {
		Success bool
		Error   struct{ Code, Message string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != CodeTooManyOpenUploads || w.Header().Get("Content-Type") != "application/json; charset=utf-8" {
		t.Errorf("answer %q (%s), want a JSON envelope with code %s", w.Body, w.Header().Get("Content-Type"), CodeTooManyOpenUploads)
	}
	if w := do(other, "POST", "/files/", nil, "Upload-Length", "10", "X-User", "bob"); w.Code != http.StatusCreated {
		t.Errorf("another user's upload: %d, want 201", w.Code)
	}
	if w := patch(e.h, first, 0, []byte("0123456789")); w.Code != http.StatusNoContent {
		t.Fatalf("finishing PATCH: %d", w.Code)
	}
	third := e.create(t, 10) // the finished upload left room
	if w := do(e.h, "POST", "/files/", nil, "Upload-Length", "10"); w.Code != http.StatusTooManyRequests {
		t.Errorf("after the refill: %d, want 429", w.Code)
	}
	if w := do(e.h, "DELETE", third, nil); w.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", w.Code)
	}
	e.create(t, 10) // the terminated upload left room
	e.clock.add(DefaultTTL)
	e.create(t, 10) // expired uploads do not count, swept or not
	e.create(t, 10)
	if w := do(e.h, "POST", "/files/", nil, "Upload-Length", "10"); w.Code != http.StatusTooManyRequests {
		t.Errorf("after the expiry: %d, want 429", w.Code)
	}
}

// TestSweep: the sweep aborts uploads older than TTL + grace and deletes
// their temporary objects (tail, SHA-256 state, lock, open marker) and any temporary
// object that old; younger uploads are untouched and still resume. A dry
// run removes nothing; an age shorter than the TTL is refused.
func TestSweep(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxOpenUploads = 10 })
	old := e.create(t, 20*mib)
	if w := patch(e.h, old, 0, randomBytes(7*mib, 12)); w.Code != http.StatusNoContent {
		t.Fatalf("PATCH: %d", w.Code)
	}
	// A lock left by a gateway that died mid-PATCH.
	c, _ := e.h.sealer.open(strings.TrimPrefix(old, "/files/"))
	if _, err := e.h.store(c).acquire(t.Context(), time.Minute, e.clock.now); err != nil {
		t.Fatal(err)
	}
	e.clock.add(DefaultTTL / 2)
	young := e.create(t, 8*mib)
	youngData := randomBytes(8*mib, 13)
	if w := patch(e.h, young, 0, youngData[:3*mib]); w.Code != http.StatusNoContent {
		t.Fatalf("PATCH: %d", w.Code)
	}
	e.clock.add(DefaultTTL/2 + SweepGrace + time.Second)
	before := e.s3.objectKeys(DefaultTempPrefix)

	dry := e.h.Sweep(t.Context(), 0, true)

	if dry.Err != nil || dry.Expired != 1 || dry.Aborted != 0 || dry.TempObjects != 4 || dry.TempDeleted != 0 {
		t.Errorf("dry run: %+v, want 1 expired upload and 4 temporary objects found, none removed", dry)
	}
	if got := e.s3.objectKeys(DefaultTempPrefix); strings.Join(got, ",") != strings.Join(before, ",") {
		t.Errorf("the dry run removed %v", before)
	}

	r := e.h.Sweep(t.Context(), 0, false)

	if r.Err != nil || r.Expired != 1 || r.Aborted != 1 || r.TempDeleted != 4 {
		t.Errorf("sweep: %+v, want 1 upload aborted and its 4 temporary objects (tail, SHA-256 state, lock, open marker) deleted", r)
	}
	if n := e.s3.openUploads(); n != 1 {
		t.Errorf("%d open uploads after the sweep, want the young one", n)
	}
	if left := e.s3.objectKeys(DefaultTempPrefix); len(left) != 2 {
		t.Errorf("temporary objects after the sweep %v, want the young upload's tail and open marker", left)
	}
	if w := patch(e.h, young, 3*mib, youngData[3*mib:]); w.Code != http.StatusNoContent {
		t.Fatalf("the young upload after the sweep: %d %s", w.Code, w.Body)
	}
	assertStored(t, e, youngData)
	if r := e.h.Sweep(t.Context(), DefaultTTL-time.Second, false); r.Err == nil {
		t.Error("a sweep with an age below the TTL was not refused")
	}
}
