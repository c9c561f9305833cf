// Package progress is the upload progress handler,
// `http.handlers.upload_progress` (Caddyfile directive `upload_progress`):
// it counts the bytes of uploads that carry an `X-Progress-ID` and answers
// polls for them in nginx-upload-progress-module's JSON
// (internal/progress).
package progress

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/progress"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler tracks the progress of uploads and reports it, compatible with
// nginx-upload-progress-module, so that the progress bars of legacy pages
// work unchanged:
//
//   - a POST or PUT carrying an `X-Progress-ID` (query parameter, or
//     header) is tracked while the handlers after this one (typically
//     `upload_gateway`) read its body; its entry ends done when the client
//     gets a status below 400, error with the status otherwise;
//   - `GET <report_path>?X-Progress-ID=<id>` (or the id in the header)
//     answers `{"state":"starting"}`, `{"state":"uploading","received":…,
//     "size":…}`, `{"state":"done"}` or `{"state":"error","status":413}`;
//     with a `callback=<name>` parameter, JSONP `<name>({…});`.
//
// Place it before `upload_gateway` (the directive is ordered right after
// `templates`, so it is) and without a matcher that would keep the polls
// from it. Handlers with the same zone share the uploads they track, and
// the entries survive config reloads.
//
// Progress lives in the memory of the process that receives the upload:
// with several instances behind a load balancer, polls must reach the
// instance that holds the upload (hash on the `X-Progress-ID` query
// parameter, or sticky sessions), as with nginx-upload-progress-module.
type Handler struct {
	// The path polls are answered on. Default `/progress`.
	ReportPath string `json:"report_path,omitempty"`

	// The name of the set of tracked uploads; handlers with the same zone
	// share it. Default `default`.
	Zone string `json:"zone,omitempty"`

	// How many uploads a zone tracks at most, running and recently
	// finished; when all are running, further uploads go untracked (their
	// polls answer starting). Default 10000 (about 1.5 MB). The zone's
	// first handler to be provisioned sets it.
	MaxEntries int `json:"max_entries,omitempty"`

	// How long the state of a finished upload is kept for a last poll.
	// Default 1m. The zone's first handler to be provisioned sets it.
	Expire caddy.Duration `json:"expire,omitempty"`

	tracker *progress.Tracker
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.upload_progress",
		New: func() caddy.Module { return new(Handler) },
	}
}

// zones holds the trackers, by zone name, across config reloads.
var zones = caddy.NewUsagePool()

// tracker is a zone's tracker in the usage pool.
type tracker struct{ *progress.Tracker }

func (tracker) Destruct() error { return nil }

// Provision applies defaults and takes the zone's tracker.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.ReportPath = cmp.Or(h.ReportPath, "/progress")
	h.Zone = cmp.Or(h.Zone, "default")
	v, _, err := zones.LoadOrNew(h.Zone, func() (caddy.Destructor, error) {
		return tracker{progress.New(h.MaxEntries, time.Duration(h.Expire))}, nil
	})
	if err != nil {
		return fmt.Errorf("loading progress zone %q: %v", h.Zone, err)
	}
	h.tracker = v.(tracker).Tracker
	return nil
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if h.MaxEntries < 0 {
		return fmt.Errorf("max_entries must not be negative")
	}
	if h.Expire < 0 {
		return fmt.Errorf("expire must not be negative")
	}
	return nil
}

// Cleanup releases the zone's tracker.
func (h *Handler) Cleanup() error {
	if h.tracker != nil {
		_, _ = zones.Delete(h.Zone)
	}
	return nil
}

// ServeHTTP answers polls and tracks uploads that name a progress id.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if r.URL.Path == h.ReportPath {
			return h.report(w, r)
		}
	case http.MethodPost, http.MethodPut:
		if id := progressID(r); id != "" {
			return h.track(w, r, next, id)
		}
	}
	return next.ServeHTTP(w, r)
}

// progressID is the upload's X-Progress-ID: the query parameter, else the
// header.
func progressID(r *http.Request) string {
	if id := r.URL.Query().Get("X-Progress-ID"); id != "" {
		return id
	}
	return r.Header.Get("X-Progress-ID")
}

// report answers a poll.
func (h *Handler) report(w http.ResponseWriter, r *http.Request) error {
	id := progressID(r)
	if !progress.ValidID(id) {
		return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("missing or invalid X-Progress-ID"))
	}
	callback := r.URL.Query().Get("callback")
	body, ok := progress.Marshal(h.tracker.Get(id), callback)
	if !ok {
		return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("invalid callback name"))
	}
	hdr := w.Header()
	if callback != "" {
		hdr.Set("Content-Type", "application/javascript")
	} else {
		hdr.Set("Content-Type", "application/json")
	}
	// Browsers (old ones above all) must not answer a poll from cache.
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(body)
	return err
}

// track counts the body of the upload id as the handlers after this one
// read it, and records the status the client got.
func (h *Handler) track(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, id string) error {
	u, err := h.tracker.Start(id, max(r.ContentLength, -1))
	if err != nil {
		// The upload goes on untracked.
		if c := h.logger.Check(zapcore.DebugLevel, "upload not tracked"); c != nil {
			c.Write(zap.String("progress_id", id), zap.Error(err))
		}
		return next.ServeHTTP(w, r)
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = struct {
			io.Reader
			io.Closer
		}{u.Reader(r.Body), r.Body}
	}
	// The entry is finished as the answer's status is written, before the
	// client can see it: a poll sent when the answer arrives says done.
	fw := &finishingWriter{ResponseWriter: w, finish: func(status int) { h.tracker.Finish(u, status) }}
	err = next.ServeHTTP(fw, r)
	status := http.StatusOK
	if err != nil {
		status = http.StatusInternalServerError
		if he, ok := err.(caddyhttp.HandlerError); ok && he.StatusCode != 0 {
			status = he.StatusCode
		}
	}
	fw.done(status) // when nothing was written (an error for Caddy to answer)
	return err
}

// finishingWriter calls finish with the status of the answer when its
// header is written, once.
type finishingWriter struct {
	http.ResponseWriter
	finish   func(status int)
	finished bool
}

func (f *finishingWriter) done(status int) {
	if !f.finished {
		f.finished = true
		f.finish(status)
	}
}

func (f *finishingWriter) WriteHeader(status int) {
	if status >= 200 { // not for 1xx informational answers
		f.done(status)
	}
	f.ResponseWriter.WriteHeader(status)
}

func (f *finishingWriter) Write(b []byte) (int, error) {
	f.done(http.StatusOK)
	return f.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (read
// deadlines, flushes).
func (f *finishingWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
