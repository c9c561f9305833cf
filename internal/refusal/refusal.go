// Package refusal turns a form the gateway refused (too large, a type not
// allowed, no or the wrong identity) into an answer a legacy web page can
// handle: a redirect the browser follows to a page that explains, or the
// request handed to the application with fields naming the error instead of
// the form, so that the application re-renders its own page with a message.
// Both are plain HTTP; nothing here stores or deletes objects. [Policy]
// is the gateway's `on_error` option: which refusals are answered so, and
// how.
package refusal

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
)

// Policy says what a browser gets when the gateway refuses a form, instead
// of the JSON error a script would read: a redirect to a page that explains,
// or the request handed to the next handler (the application) with fields
// naming the error in place of the form, so that the application re-renders
// its page with a message. Nothing is stored either way: whatever was
// stored before the refusal has been deleted.
//
// Set exactly one of redirect and pass_field.
type Policy struct {
	// Answer 303 See Other to this URL. Placeholders are replaced, among
	// them `{http.upload_gateway.error_status}` (e.g. 413),
	// `{http.upload_gateway.error_code}` (e.g. `FILE_TOO_LARGE`) and
	// `{http.upload_gateway.error}` (the message; escape it with care in
	// URLs). Example: `/upload?error={http.upload_gateway.error_status}`.
	Redirect string `json:"redirect,omitempty"`

	// Pass the request on as a POST of a new multipart form holding only
	// `<pass_field>` (the status), `<pass_field>_code` and
	// `<pass_field>_message`: none of the client's fields or files. Its
	// values say only that the form was refused; the application must not
	// trust them for anything else (a client can send such a form itself).
	PassField string `json:"pass_field,omitempty"`

	// The statuses handled this way; others get the JSON error. 4 and 5
	// stand for all 4xx and 5xx. Default 401, 403, 413 and 415.
	Statuses []int `json:"statuses,omitempty"`
}

// defaultStatuses are the refusals a form's page can explain.
var defaultStatuses = []int{http.StatusUnauthorized, http.StatusForbidden,
	http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType}

// Validate checks that p has one action and statuses of refusals.
func (p *Policy) Validate() error {
	if (p.Redirect == "") == (p.PassField == "") {
		return fmt.Errorf("on_error: set one of redirect and pass_field")
	}
	for _, s := range p.Statuses {
		if (s < 400 && s != 4 && s != 5) || s > 599 {
			return fmt.Errorf("on_error: invalid status %d (want 4xx or 5xx)", s)
		}
	}
	return nil
}

// Handles reports whether a refusal with status is answered as p says.
func (p *Policy) Handles(status int) bool {
	if len(p.Statuses) == 0 {
		return slices.Contains(defaultStatuses, status)
	}
	return slices.Contains(p.Statuses, status) || slices.Contains(p.Statuses, status/100)
}

// Answer answers ref as p says: a [Redirect] to p.Redirect with its
// placeholders replaced by expand, or next called with the [HandOff]
// request.
func (p *Policy) Answer(w http.ResponseWriter, r *http.Request, ref Refusal, expand func(string) string, next func(http.ResponseWriter, *http.Request) error) error {
	if p.Redirect != "" {
		Redirect(w, expand(p.Redirect))
		return nil
	}
	return next(w, HandOff(r, p.PassField, ref))
}

// Refusal describes why a form was refused.
type Refusal struct {
	Status  int    // the HTTP status the client would have got: 401, 403, 413, 415, …
	Code    string // the gateway's error code, e.g. FILE_TOO_LARGE
	Message string // the human-readable message
}

// Redirect answers 303 See Other to location: the browser follows with a
// GET, so a reload of the page it lands on does not post the form again.
func Redirect(w http.ResponseWriter, location string) {
	w.Header().Set("Location", location)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusSeeOther)
}

// HandOff returns a copy of r, a POST to the same URL with the same headers,
// whose body is a new multipart form holding only field (the status),
// field_code and field_message: none of the client's fields and files. What
// is left of r's body is not read.
func HandOff(r *http.Request, field string, ref Refusal) *http.Request {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	// Writes to buf do not fail.
	_ = mw.WriteField(field, strconv.Itoa(ref.Status))
	_ = mw.WriteField(field+"_code", ref.Code)
	_ = mw.WriteField(field+"_message", ref.Message)
	_ = mw.Close()
	out := r.Clone(r.Context())
	out.Method = http.MethodPost
	out.Header.Set("Content-Type", mw.FormDataContentType())
	out.Header.Set("Content-Length", strconv.Itoa(buf.Len()))
	out.Header.Del("Transfer-Encoding")
	out.Header.Del("Expect")
	out.TransferEncoding = nil
	out.ContentLength = int64(buf.Len())
	body := buf.Bytes()
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(body)), nil
	}
	return out
}
