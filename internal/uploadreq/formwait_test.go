package uploadreq

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"
)

// A form that waits for memory notices when its client goes (an HTTP/1.1
// request's context is not cancelled while the body is read) and gives up
// its place at once, with the client's read error rather than 503 after
// memory_wait; a client that is still there gets its form through intact
// once memory frees up.
func TestFormWaitingForMemory(t *testing.T) {
	const head = "--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n"
	tests := []struct {
		name string
		// then runs once the form waits for memory; it frees memory or not
		// and sends the rest of the body or hangs up.
		then      func(hog *s3stream.Account, w *io.PipeWriter)
		wantErr   error
		wantField string
	}{
		{
			name: "the client hangs up",
			then: func(_ *s3stream.Account, w *io.PipeWriter) {
				w.CloseWithError(io.ErrUnexpectedEOF)
			},
			wantErr: formstream.ErrRead,
		},
		{
			name: "the client stays and memory frees up",
			then: func(hog *s3stream.Account, w *io.PipeWriter) {
				go func() {
					_, _ = io.WriteString(w, "hello\r\n--b--\r\n")
					w.Close()
				}()
				time.Sleep(50 * time.Millisecond)
				hog.Close()
			},
			wantField: "hello",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const wait = 3 * time.Second
			budget := s3stream.NewBufferBudget(64<<10, wait)
			hog := budget.Open()
			if err := hog.Acquire(context.Background(), 64<<10); err != nil {
				t.Fatal(err)
			}
			defer hog.Close()
			pr, pw := io.Pipe()
			defer pw.Close()
			r := httptest.NewRequest(http.MethodPost, "/up", pr)
			r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
			c := &Config{Pass: true}
			q := c.New(r, placeholders{})
			acct := budget.Open()
			defer acct.Close()

			go func() { _, _ = io.WriteString(pw, head) }()
			done := make(chan error, 1)
			go func() { done <- q.Store(acct) }()
			deadline := time.Now().Add(wait / 2)
			for budget.Waiting() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the form never waited for memory")
				}
				time.Sleep(time.Millisecond)
			}
			tt.then(hog, pw)

			err := <-done
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("store() = %v", err)
				}
				if got := q.form.String(); !strings.Contains(got, "\r\n\r\n"+tt.wantField+"\r\n") {
					t.Errorf("rewritten form %q has no field value %q", got, tt.wantField)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || errors.Is(err, s3stream.ErrMemoryWait) {
				t.Fatalf("store() = %v, want %v", err, tt.wantErr)
			}
			if a := c.Classify(err, q.body.err); a.Status != envelope.StatusClientClosedRequest {
				t.Errorf("answered %d %s, want %d", a.Status, a.Code, envelope.StatusClientClosedRequest)
			}
			if budget.Waiting() != 0 {
				t.Errorf("%d requests still wait for memory", budget.Waiting())
			}
		})
	}
}
