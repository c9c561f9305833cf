package tus

import (
	"context"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The IETF draft "Resumable Uploads for HTTP"
// (draft-ietf-httpbis-resumable-upload) is served on the same handler
// and the same S3 state as tus: a request carrying a supported
// Upload-Draft-Interop-Version is the draft's, any other is tus's.
const (
	// InteropHeader names the draft's interop version in requests and
	// answers.
	InteropHeader = "Upload-Draft-Interop-Version"
	// PartialUploadType is the media type of an append's body from
	// interop version 6 (drafts -04 and -05) on.
	PartialUploadType = "application/partial-upload"
	// StatusUploadResumptionSupported is the informational answer that
	// tells the client, before the body is read, where the upload can be
	// resumed (Location).
	StatusUploadResumptionSupported = 104
)

// InteropVersions are the interop versions served, as tusd v2 does: 3
// (draft -01: Upload-Incomplete), 4 (-02: Upload-Complete), 5 (-03), 6
// (-04 and -05: Upload-Length, Upload-Limit, appends as
// application/partial-upload).
var InteropVersions = []string{"3", "4", "5", "6"}

// InteropVersion returns the request's Upload-Draft-Interop-Version if
// it is one served, else "" (the request is tus's).
func InteropVersion(r *http.Request) string {
	if v := r.Header.Get(InteropHeader); slices.Contains(InteropVersions, v) {
		return v
	}
	return ""
}

// serveIETF serves a request of the draft at interop version v: OPTIONS,
// creation (POST, or PUT), offset retrieval (HEAD), append (PATCH) and
// cancellation (DELETE).
func (h *Handler) serveIETF(w http.ResponseWriter, r *http.Request, method, v string) error {
	hdr := w.Header()
	hdr.Set(InteropHeader, v)
	switch method {
	case http.MethodOptions:
		hdr.Set("Upload-Limit", h.uploadLimit(nil))
		w.WriteHeader(http.StatusNoContent)
		return nil
	case http.MethodPost, http.MethodPut:
		return h.ietfCreate(w, r, v)
	case http.MethodHead:
		return h.ietfHead(w, r, v)
	case http.MethodPatch:
		return h.ietfAppend(w, r, v)
	case http.MethodDelete:
		return h.terminate(w, r)
	}
	hdr.Set("Allow", "OPTIONS, POST, PUT, HEAD, PATCH, DELETE")
	return fail(http.StatusMethodNotAllowed, "method %s not allowed", method)
}

// uploadComplete reads whether the request's body ends the upload:
// Upload-Complete: ?1, or Upload-Incomplete: ?0 at interop version 3.
// An absent field means it does not (as tusd reads it).
func uploadComplete(r *http.Request, v string) (bool, error) {
	name, complete := "Upload-Complete", "?1"
	if v == "3" {
		name, complete = "Upload-Incomplete", "?0"
	}
	switch f := r.Header.Get(name); f {
	case "":
		return false, nil
	case "?0", "?1":
		return f == complete, nil
	default:
		return false, fail(http.StatusBadRequest, "%s must be ?0 or ?1, not %q", name, f)
	}
}

// setComplete answers whether the upload is complete, in v's field.
func setComplete(hdr http.Header, v string, done bool) {
	if v == "3" {
		hdr.Set("Upload-Incomplete", map[bool]string{true: "?0", false: "?1"}[done])
		return
	}
	hdr.Set("Upload-Complete", map[bool]string{true: "?1", false: "?0"}[done])
}

// uploadLimit is the Upload-Limit field: the size limits, and for an
// upload (c not nil) the seconds it may still be continued.
func (h *Handler) uploadLimit(c *claims) string {
	s := "min-size=0,max-size=" + strconv.FormatInt(h.cfg.MaxSize, 10)
	if c != nil {
		left := max(time.Unix(c.Expires, 0).Sub(h.cfg.Now()), 0)
		s += ",expires=" + strconv.FormatInt(int64(left/time.Second), 10)
	}
	return s
}

// ietfMetadata is the creation's Upload-Metadata if it has one (as
// tus-js-client sends it in the draft's mode too), else its Content-Type
// and Content-Disposition filename as tus Upload-Metadata (filetype,
// filename), which the upload's claims carry as they do for tus.
func ietfMetadata(r *http.Request) string {
	if m := r.Header.Get("Upload-Metadata"); m != "" {
		return m
	}
	var pairs []string
	if mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt != PartialUploadType && mt != OffsetContentType {
		pairs = append(pairs, "filetype "+base64.StdEncoding.EncodeToString([]byte(mime.FormatMediaType(mt, params))))
	}
	if _, params, err := mime.ParseMediaType(r.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		pairs = append(pairs, "filename "+base64.StdEncoding.EncodeToString([]byte(params["filename"])))
	}
	return strings.Join(pairs, ",")
}

// ietfCreate handles upload creation: the upload is created, 104 Upload
// Resumption Supported announces its Location (where the protocol
// allows informational answers), then the body is appended, and 201
// answers the offset reached.
func (h *Handler) ietfCreate(w http.ResponseWriter, r *http.Request, v string) error {
	complete, err := uploadComplete(r, v)
	if err != nil {
		return err
	}
	length := int64(-1)
	if f := r.Header.Get("Upload-Length"); f != "" {
		if length, err = parseLength(f); err != nil {
			return fail(http.StatusBadRequest, "Upload-Length: %v", err)
		}
	}
	if complete && r.ContentLength >= 0 {
		if length >= 0 && length != r.ContentLength {
			return fail(http.StatusBadRequest, "Upload-Length %d differs from the Content-Length %d of a complete upload", length, r.ContentLength)
		}
		length = r.ContentLength
	}
	switch {
	case length > h.cfg.MaxSize:
		return fail(http.StatusRequestEntityTooLarge, "the upload's length exceeds the maximum size %d", h.cfg.MaxSize)
	case length >= 0 && r.ContentLength > length:
		return fail(http.StatusBadRequest, "the body exceeds Upload-Length by %d bytes", r.ContentLength-length)
	case length < 0 && r.ContentLength > h.cfg.MaxSize:
		return fail(http.StatusRequestEntityTooLarge, "the body exceeds the maximum size %d", h.cfg.MaxSize)
	}
	c := claims{Owner: h.cfg.User(r), Length: length, Metadata: ietfMetadata(r)}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s3Timeout)
	defer cancel()
	c, err = h.begin(ctx, w, r, c, "the metadata (Upload-Metadata, or Content-Type and Content-Disposition)")
	if err != nil {
		return err
	}
	hdr := w.Header()
	hdr.Set("Upload-Limit", h.uploadLimit(&c))
	if c.Length == 0 || r.ContentLength == 0 {
		// Nothing to append (tus-js-client creates before it appends).
		hdr.Set("Upload-Offset", "0")
		setComplete(hdr, v, c.Length == 0)
		w.WriteHeader(http.StatusCreated)
		return nil
	}
	if r.ProtoAtLeast(1, 1) {
		// Before the body: a client that loses the connection while
		// sending it knows where to resume.
		w.WriteHeader(StatusUploadResumptionSupported)
	}
	offset, length, err := h.appendAt(w, r, c, 0, -1, nil, complete)
	if he, ok := errors.AsType[*httpError](err); ok {
		if he.status == http.StatusUnsupportedMediaType {
			// The content was refused and the upload removed.
			hdr.Del("Location")
			hdr.Del("Upload-Limit")
		}
		return he
	}
	if err != nil && !errors.Is(err, errLocked) && h.cfg.OnError != nil {
		// The upload exists: the client may resume it from HEAD.
		h.cfg.OnError(r, err)
	}
	hdr.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	setComplete(hdr, v, length >= 0 && offset == length)
	w.WriteHeader(http.StatusCreated)
	return nil
}

// ietfHead handles offset retrieval.
func (h *Handler) ietfHead(w http.ResponseWriter, r *http.Request, v string) error {
	c, st, err := h.headProgress(w, r)
	if err != nil {
		return err
	}
	hdr := w.Header()
	setComplete(hdr, v, st.length >= 0 && st.offset() == st.length)
	hdr.Set("Upload-Limit", h.uploadLimit(&c))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ietfAppend handles an append (PATCH) at Upload-Offset.
func (h *Handler) ietfAppend(w http.ResponseWriter, r *http.Request, v string) error {
	if v == "6" {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != PartialUploadType {
			return fail(http.StatusUnsupportedMediaType, "Content-Type must be %s", PartialUploadType)
		}
	}
	offset, err := parseLength(r.Header.Get("Upload-Offset"))
	if err != nil {
		return fail(http.StatusBadRequest, "Upload-Offset: %v", err)
	}
	complete, err := uploadComplete(r, v)
	if err != nil {
		return err
	}
	newLength := int64(-1)
	if f := r.Header.Get("Upload-Length"); f != "" {
		if newLength, err = parseLength(f); err != nil {
			return fail(http.StatusBadRequest, "Upload-Length: %v", err)
		}
	}
	if complete && r.ContentLength >= 0 {
		if end := offset + r.ContentLength; newLength < 0 {
			newLength = end
		} else if newLength != end {
			return fail(http.StatusBadRequest, "Upload-Length %d differs from the end %d of a completing append", newLength, end)
		}
	}
	c, err := h.open(r)
	if err != nil {
		return err
	}
	hdr := w.Header()
	newOffset, length, err := h.appendAt(w, r, c, offset, newLength, nil, complete && r.ContentLength < 0)
	switch {
	case errors.Is(err, errUploadComplete):
		setComplete(hdr, v, true)
		if hdr.Get("Upload-Offset") == strconv.FormatInt(offset, 10) {
			// A retry of the append that completed it.
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		return fail(http.StatusBadRequest, "upload is complete")
	case err != nil:
		if hdr.Get("Upload-Offset") != "" {
			setComplete(hdr, v, false)
		}
		return err
	}
	hdr.Set("Upload-Offset", strconv.FormatInt(newOffset, 10))
	setComplete(hdr, v, length >= 0 && newOffset == length)
	hdr.Set("Upload-Limit", h.uploadLimit(&c))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
