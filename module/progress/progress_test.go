package progress

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/progress"
)

func newHandler() *Handler {
	return &Handler{ReportPath: "/progress", tracker: progress.New(10, 0), logger: zap.NewNop()}
}

func poll(t *testing.T, h *Handler, query string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	err := h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/progress?"+query, nil), caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Fatal("poll passed on")
		return nil
	}))
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return he.StatusCode, ""
	}
	if err != nil {
		t.Fatal(err)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	return rec.Code, rec.Body.String()
}

func TestTrackAndReport(t *testing.T) {
	tests := []struct {
		name     string
		idHeader bool
		status   int   // what the next handler answers
		err      error // what it returns
		want     string
	}{
		{name: "stored", status: http.StatusCreated, want: `{"state":"done"}`},
		{name: "id in header", idHeader: true, status: http.StatusSeeOther, want: `{"state":"done"}`},
		{name: "refused", status: http.StatusRequestEntityTooLarge, want: `{"state":"error","status":413}`},
		{name: "handler error", err: caddyhttp.Error(http.StatusUnsupportedMediaType, errors.New("no")), want: `{"state":"error","status":415}`},
		{name: "plain error", err: errors.New("boom"), want: `{"state":"error","status":500}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHandler()
			url := "/upload?X-Progress-ID=abc"
			if tt.idHeader {
				url = "/upload"
			}
			r := httptest.NewRequest(http.MethodPost, url, strings.NewReader("0123456789"))
			if tt.idHeader {
				r.Header.Set("X-Progress-ID", "abc")
			}
			var during string
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				buf := make([]byte, 4)
				if _, err := io.ReadFull(r.Body, buf); err != nil {
					t.Fatal(err)
				}
				_, during = poll(t, h, "X-Progress-ID=abc")
				if tt.err != nil {
					return tt.err
				}
				w.WriteHeader(tt.status)
				return nil
			})
			if _, body := poll(t, h, "X-Progress-ID=abc"); body != `{"state":"starting"}` {
				t.Errorf("before: %s", body)
			}
			err := h.ServeHTTP(httptest.NewRecorder(), r, next)
			if !errors.Is(err, tt.err) {
				t.Errorf("error %v, want %v", err, tt.err)
			}
			if want := `{"state":"uploading","received":4,"size":10}`; during != want {
				t.Errorf("during: %s, want %s", during, want)
			}
			if _, body := poll(t, h, "X-Progress-ID=abc"); body != tt.want {
				t.Errorf("after: %s, want %s", body, tt.want)
			}
		})
	}
}

func TestReportErrors(t *testing.T) {
	h := newHandler()
	for _, q := range []string{"", "X-Progress-ID=a/b", "X-Progress-ID=ok&callback=alert(1)"} {
		if code, _ := poll(t, h, q); code != http.StatusBadRequest {
			t.Errorf("%q: status %d, want 400", q, code)
		}
	}
	if _, body := poll(t, h, "X-Progress-ID=ok&callback=cb"); body != `cb({"state":"starting"});` {
		t.Errorf("JSONP: %s", body)
	}
}

func TestOtherRequestsPass(t *testing.T) {
	h := newHandler()
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/elsewhere?X-Progress-ID=a", nil),
		httptest.NewRequest(http.MethodPost, "/upload", strings.NewReader("x")),
	} {
		called := false
		_ = h.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
			called = true
			return nil
		}))
		if !called {
			t.Errorf("%s %s not passed on", r.Method, r.URL)
		}
	}
	if h.tracker.Len() != 0 {
		t.Errorf("%d uploads tracked, want 0", h.tracker.Len())
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    Handler
		wantErr bool
	}{
		{name: "bare", input: `upload_progress`},
		{name: "block", input: `upload_progress {
			report_path /p
			zone forms
			max_entries 500
			expire 30s
		}`, want: Handler{ReportPath: "/p", Zone: "forms", MaxEntries: 500, Expire: 30_000_000_000}},
		{name: "bad max_entries", input: "upload_progress {\nmax_entries 0\n}", wantErr: true},
		{name: "bad expire", input: "upload_progress {\nexpire soon\n}", wantErr: true},
		{name: "unknown", input: "upload_progress {\nfoo bar\n}", wantErr: true},
		{name: "an argument", input: `upload_progress /a`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Handler
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (got.ReportPath != tt.want.ReportPath || got.Zone != tt.want.Zone ||
				got.MaxEntries != tt.want.MaxEntries || got.Expire != tt.want.Expire) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// The entry is finished when the answer's status is written, before the
// client can read it: a poll sent as the answer arrives says done.
func TestFinishedWhenAnswerWritten(t *testing.T) {
	h := newHandler()
	r := httptest.NewRequest(http.MethodPost, "/upload?X-Progress-ID=w1", strings.NewReader("abc"))
	var atWrite string
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
		_, atWrite = poll(t, h, "X-Progress-ID=w1")
		return nil
	})
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	if atWrite != `{"state":"done"}` {
		t.Errorf("right after the status was written: %s", atWrite)
	}
}
