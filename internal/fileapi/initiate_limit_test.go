package fileapi

import (
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"

	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// One user may only be starting a few multipart uploads at once: more get
// 429 with Retry-After, before any S3 call; other users are not affected,
// and the slots come back when the calls end.
func TestInitiateConcurrencyIsCappedPerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.MaxConcurrentInitiates = 2
		c.OnPresign, c.OnDenied, c.OnError = nil, nil, nil // called from several goroutines
	})
	var ids atomic.Int64
	e.svc.newID = func() string { return fmt.Sprintf("id-%d", ids.Add(1)) }
	entered, release := make(chan struct{}, 8), make(chan struct{})
	e.store.beforeCreate = func() {
		entered <- struct{}{}
		<-release
	}
	body := `{"fileName":"a.pdf","fileSize":6291456,"contentType":"application/pdf"}`
	start := func(user policy.Subject) <-chan int {
		status := make(chan int, 1)
		go func() {
			r := httptest.NewRequest("POST", "/files/multipart/initiate", bytes.NewReader([]byte(body)))
			r.Header.Set("Content-Type", "application/json")
			r = r.WithContext(WithSubject(r.Context(), user))
			w := httptest.NewRecorder()
			e.svc.ServeHTTP(w, r)
			status <- w.Code
		}()
		return status
	}

	first, second := start(alice), start(alice)
	<-entered
	<-entered
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/files/multipart/initiate", bytes.NewReader([]byte(body)))
	r.Header.Set("Content-Type", "application/json")
	e.svc.ServeHTTP(w, r.WithContext(WithSubject(r.Context(), alice)))
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || !bytes.Contains(w.Body.Bytes(), []byte(`"TOO_MANY_REQUESTS"`)) {
		t.Errorf("third concurrent initiate: %d %v %s", w.Code, w.Header(), w.Body)
	}
	other := start(bob)
	<-entered // bob's call reached S3 although alice is at her limit
	close(release)
	for name, c := range map[string]<-chan int{"first": first, "second": second, "bob": other} {
		if status := <-c; status != http.StatusOK {
			t.Errorf("%s initiate: %d", name, status)
		}
	}
	e.store.beforeCreate = nil
	expect(t, e.do(t, &alice, "POST", "/files/multipart/initiate", map[string]any{"fileName": "b.pdf", "fileSize": 6 << 20, "contentType": "application/pdf"}), 200, "")
	if n := len(e.store.created); n != 4 {
		t.Errorf("%d CreateMultipartUpload calls, want 4", n)
	}
	if len(e.svc.initiating) != 0 {
		t.Errorf("slots left taken: %v", e.svc.initiating)
	}
}

func TestInitiateLimitDefaults(t *testing.T) {
	t.Parallel()
	if e := newEnv(t); e.svc.cfg.MaxConcurrentInitiates != DefaultMaxConcurrentInitiates {
		t.Errorf("default limit %d", e.svc.cfg.MaxConcurrentInitiates)
	}
	e := newEnv(t, func(c *Config) { c.MaxConcurrentInitiates = -1 })
	for range 10 {
		done, err := e.svc.startInitiate("alice")
		if err != nil {
			t.Fatalf("unlimited: %v", err)
		}
		defer done()
	}
}
