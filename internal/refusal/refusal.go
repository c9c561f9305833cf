// Package refusal turns a form the gateway refused (too large, a type not
// allowed, no or the wrong identity) into an answer a legacy web page can
// handle: a redirect the browser follows to a page that explains, or the
// request handed to the application with fields naming the error instead of
// the form, so that the application re-renders its own page with a message.
// Both are plain HTTP; nothing here stores or deletes objects.
package refusal

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
)

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

// Fields returns the form fields HandOff writes for ref: field (the
// status), field_code and field_message.
func Fields(field string, ref Refusal) [][2]string {
	return [][2]string{
		{field, strconv.Itoa(ref.Status)},
		{field + "_code", ref.Code},
		{field + "_message", ref.Message},
	}
}

// HandOff returns a copy of r, a POST to the same URL with the same headers,
// whose body is a new multipart form holding only [Fields]: none of the
// client's fields and files. What is left of r's body is not read.
func HandOff(r *http.Request, field string, ref Refusal) (*http.Request, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range Fields(field, ref) {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
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
	return out, nil
}
