package formstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
)

// Errors returned by [Boundary] and [Rewrite], wrapped with details. The
// package documentation says which HTTP status each one maps to.
var (
	// ErrNotMultipart means the request's Content-Type is not
	// multipart/form-data.
	ErrNotMultipart = errors.New("formstream: not a multipart/form-data request")
	// ErrMalformed means the form does not parse: a missing or invalid
	// boundary, a body that ends before the closing boundary, a part without
	// a name or with a disposition other than form-data, or one of the
	// ambiguous parts listed in the package documentation. The parser's own
	// error is wrapped too.
	ErrMalformed = errors.New("formstream: malformed multipart form")
	// ErrRead means reading the request body failed (the client hung up, a
	// read timed out, MaxBytesReader refused more). The reader's error is
	// wrapped too, and so is the context's error if it is done by then.
	ErrRead = errors.New("formstream: reading request body")
	// ErrTooManyFiles means the form has more than Limits.MaxFiles files.
	ErrTooManyFiles = errors.New("formstream: too many files")
	// ErrTooManyFields means the form has more than Limits.MaxFields plain
	// parts.
	ErrTooManyFields = errors.New("formstream: too many fields")
	// ErrFieldTooLarge means a plain field value is longer than
	// Limits.MaxFieldBytes.
	ErrFieldTooLarge = errors.New("formstream: field too large")
	// ErrFormTooLarge means the plain field values and replacement fields
	// together are longer than Limits.MaxFormBytes, or that a part's header
	// is longer than Limits.MaxHeaderBytes.
	ErrFormTooLarge = errors.New("formstream: form too large")
)

// Default limits, used where a [Limits] field is zero.
const (
	DefaultMaxFields     = 1000
	DefaultMaxFieldBytes = 1 << 20
	DefaultMaxFormBytes  = 10 << 20
	// DefaultMaxHeaderBytes bounds one part's header block.
	DefaultMaxHeaderBytes = 16 << 10
)

// readStep is the size of the buffer field values are read through, at most
// what one read returns. It is reserved with Limits.Reserve once per form;
// the bytes read are reserved as they arrive.
const readStep = 4 << 10

// Field is a plain form field.
type Field struct {
	Name, Value string
}

// File is one file part of the form. Body reads it once, straight from the
// request stream, and is valid only until store returns.
type File struct {
	// Field is the form field name.
	Field string
	// FileName is the file name as sent by the client, decoded from
	// filename* when present and otherwise untouched: it may be empty, hold
	// a Windows or Unix path, or anything else a header can carry.
	FileName string
	// ContentType is the declared Content-Type of the part, "" if none.
	ContentType string
	// Header holds the part's headers, keys in canonical form.
	Header textproto.MIMEHeader
	// Index is the 0-based index of the file among the files passed to
	// store (skipped empty file inputs take no index).
	Index int
	// Body is the file's content, quoted-printable decoded if the part
	// says so.
	Body io.Reader
}

// StoreFunc stores one file and returns the fields that replace it in the
// rewritten form, in order (none is fine). It must read f.Body to the end or
// return an error; whatever it leaves unread is read and discarded. Field
// names must not be empty.
type StoreFunc func(ctx context.Context, f *File) ([]Field, error)

// Limits bound what one form may hold. Zero values mean the defaults;
// negative values behave like zero.
type Limits struct {
	// MaxFiles is the maximum number of files; 0 means unlimited.
	MaxFiles int
	// MaxFields is the maximum number of plain parts, skipped empty file
	// inputs included; 0 means DefaultMaxFields.
	MaxFields int
	// MaxFieldBytes is the maximum length of one plain field value as sent;
	// 0 means DefaultMaxFieldBytes.
	MaxFieldBytes int64
	// MaxFormBytes is the maximum total length of the plain fields (their
	// headers and values) and the replacement field values; 0 means
	// DefaultMaxFormBytes. It bounds the memory of the rewritten form.
	MaxFormBytes int64
	// MaxHeaderBytes is the maximum length of one part's header block, file
	// parts included; 0 means DefaultMaxHeaderBytes. The headers of plain
	// parts also count towards MaxFormBytes.
	MaxHeaderBytes int64

	// Reserve, when set, is called before the form keeps n more bytes in
	// memory: part headers, a 4 KiB read buffer once per form, field values
	// as their bytes arrive (twice: the parsed value and the rewritten form;
	// no more than was read), and replacement fields. It may be called once
	// per read of the body. An error stops Rewrite and is returned wrapped. What was reserved is the
	// caller's to release when the form is no longer needed.
	Reserve func(ctx context.Context, n int64) error
	// CheckName, when set, is called with the name of every plain field as
	// soon as its headers are read, before its value is kept and before any
	// later file is stored. An error stops Rewrite and is returned wrapped.
	CheckName func(name string) error
	// Pass, when set, decides which plain fields are written to out: a
	// field it returns false for is read, counted against the limits and
	// returned in Result.Fields as usual, but not forwarded. Nil passes
	// every field.
	Pass func(name string) bool
}

// Result is what [Rewrite] saw.
type Result struct {
	// Fields are the plain fields, in form order, with quoted-printable
	// values decoded.
	Fields []Field
	// Files is the number of files stored.
	Files int
}

// Boundary returns the boundary of a multipart/form-data Content-Type. It
// returns [ErrNotMultipart] for any other media type (or none) and
// [ErrMalformed] when the boundary is missing, or is not 1 to 70 characters
// allowed by RFC 2046.
func Boundary(contentType string) (string, error) {
	base, _, _ := strings.Cut(contentType, ";")
	if mt := strings.ToLower(strings.TrimSpace(base)); mt != "multipart/form-data" {
		return "", fmt.Errorf("%w: Content-Type is %q", ErrNotMultipart, mt)
	}
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", fmt.Errorf("%w: Content-Type: %w", ErrMalformed, err)
	}
	b, ok := params["boundary"]
	if !ok {
		return "", fmt.Errorf("%w: Content-Type has no boundary", ErrMalformed)
	}
	if err := checkBoundary(b); err != nil {
		return "", err
	}
	return b, nil
}

// Rewrite reads the form from body, calls store for every file part in
// order and, when out is not nil, writes the rewritten form to out: every
// plain part re-emitted in canonical form (its name as parsed, its decoded
// value, in the same order), every file part replaced by the fields store
// returned, at the same position. It does not close out. It returns the plain fields it saw and the
// number of files stored; on error, what was done before the error.
//
// The context is checked between parts and handed to store. store must not
// be nil.
func Rewrite(ctx context.Context, body io.Reader, boundary string, lim Limits, store StoreFunc, out *multipart.Writer) (Result, error) {
	if err := checkBoundary(boundary); err != nil {
		return Result{}, err
	}
	rw := &rewriter{
		ctx:   ctx,
		src:   newSource(body, boundary),
		store: store,
		out:   out,
		lim:   lim.withDefaults(),
	}
	rw.formLeft = rw.lim.MaxFormBytes
	err := rw.run()
	return rw.res, err
}

func (l Limits) withDefaults() Limits {
	l.MaxFiles = max(l.MaxFiles, 0)
	if l.MaxFields <= 0 {
		l.MaxFields = DefaultMaxFields
	}
	if l.MaxFieldBytes <= 0 {
		l.MaxFieldBytes = DefaultMaxFieldBytes
	}
	if l.MaxFormBytes <= 0 {
		l.MaxFormBytes = DefaultMaxFormBytes
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return l
}

func (rw *rewriter) reserve(n int64) error {
	if rw.lim.Reserve == nil || n <= 0 {
		return nil
	}
	if err := rw.lim.Reserve(rw.ctx, n); err != nil {
		return fmt.Errorf("formstream: part %d: %w", rw.part, err)
	}
	return nil
}

// rewriter holds the state of one Rewrite call.
type rewriter struct {
	ctx   context.Context
	src   *source
	store StoreFunc
	out   *multipart.Writer
	lim   Limits

	res      Result
	part     int   // index of the current part, for error messages
	fields   int   // plain parts seen, skipped empty file inputs included
	formLeft int64 // what is left of MaxFormBytes
	buf      bytes.Buffer
	scratch  []byte // the read buffer of field values, once reserved
}

func (rw *rewriter) run() error {
	mr := multipart.NewReader(rw.src, rw.src.boundary)
	for ; ; rw.part++ {
		if err := rw.ctx.Err(); err != nil {
			if rw.src.err != nil {
				return rw.readError(nil) // the body failed first
			}
			return fmt.Errorf("formstream: %w", contextError(rw.ctx))
		}
		// The header block is read now: bound it before the parser buffers
		// it (plus the parser's read-ahead of at most 4 KiB).
		rw.src.headerLeft = rw.lim.MaxHeaderBytes + 4<<10
		p, err := mr.NextRawPart()
		rw.src.headerLeft = -1
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if rw.src.err == nil && errors.Is(err, errBodyEnd) && rw.src.endsWithCloseDelimiter() {
				// The body ends right after "--boundary--", with no line
				// break: a complete form.
				return nil
			}
			return rw.readError(err)
		}
		d, err := parseDisposition(p.Header)
		if err != nil {
			return fmt.Errorf("%w: part %d: %w", ErrMalformed, rw.part, err)
		}
		h := headerBytes(p.Header)
		if h > rw.lim.MaxHeaderBytes {
			return fmt.Errorf("%w: part %d: headers longer than %d bytes", ErrFormTooLarge, rw.part, rw.lim.MaxHeaderBytes)
		}
		if err := rw.reserve(h); err != nil {
			return err
		}
		qp, err := quotedPrintable(p.Header)
		if err != nil {
			return fmt.Errorf("%w: part %d (field %q): %w", ErrMalformed, rw.part, d.name, err)
		}
		if d.file {
			err = rw.file(p, d, qp)
		} else {
			err = rw.field(p, d, qp)
		}
		if err != nil {
			return err
		}
	}
}

// field reads a plain field, keeps it and copies it to out.
func (rw *rewriter) field(p *multipart.Part, d disposition, qp bool) error {
	if err := rw.countField(); err != nil {
		return err
	}
	if rw.lim.CheckName != nil {
		if err := rw.lim.CheckName(d.name); err != nil {
			return fmt.Errorf("formstream: part %d: %w", rw.part, err)
		}
	}
	if isMultipart(p.Header.Get("Content-Type")) {
		return fmt.Errorf("%w: field %q is a nested multipart body", ErrMalformed, d.name)
	}
	charset, err := valueCharset(p.Header.Get("Content-Type"))
	if err != nil {
		return fmt.Errorf("%w: field %q: %w", ErrMalformed, d.name, err)
	}
	// The part's headers are copied into the rewritten form too: they count.
	if h := headerBytes(p.Header); h > rw.formLeft {
		return fmt.Errorf("%w: the form is longer than %d bytes at the headers of field %q", ErrFormTooLarge, rw.lim.MaxFormBytes, d.name)
	} else {
		rw.formLeft -= h
	}
	limit := min(rw.lim.MaxFieldBytes, rw.formLeft, math.MaxInt64-1)
	if rw.scratch == nil {
		// One read buffer for every field of the form, reserved once.
		if err := rw.reserve(readStep); err != nil {
			return err
		}
		rw.scratch = make([]byte, readStep)
	}
	rw.buf.Reset()
	var n int64
	for n <= limit {
		// Only what arrived is reserved, twice (the value kept and its copy
		// in the rewritten form), before it is kept: a 1-byte field costs
		// 2 bytes of the budget, not a whole step.
		m, err := p.Read(rw.scratch[:min(readStep, limit+1-n)])
		if m > 0 {
			if err := rw.reserve(2 * int64(m)); err != nil {
				return err
			}
			rw.buf.Write(rw.scratch[:m])
			n += int64(m)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return rw.readError(err)
		}
	}
	switch {
	case n > rw.lim.MaxFieldBytes:
		return fmt.Errorf("%w: field %q is longer than %d bytes", ErrFieldTooLarge, d.name, rw.lim.MaxFieldBytes)
	case n > rw.formLeft:
		return fmt.Errorf("%w: the form is longer than %d bytes at field %q", ErrFormTooLarge, rw.lim.MaxFormBytes, d.name)
	}
	rw.formLeft -= n
	raw := rw.buf.Bytes()
	value := raw
	if qp {
		var err error
		if value, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw))); err != nil {
			return fmt.Errorf("%w: field %q: %w", ErrMalformed, d.name, err)
		}
	}
	if charset != "" {
		// The Content-Type that declares the charset is not forwarded:
		// the value is, in UTF-8.
		s, err := toUTF8(charset, string(value))
		if err != nil {
			return fmt.Errorf("%w: field %q: %w", ErrMalformed, d.name, err)
		}
		if grown := int64(len(s) - len(value)); grown > 0 {
			if grown > rw.formLeft {
				return fmt.Errorf("%w: the form is longer than %d bytes at field %q", ErrFormTooLarge, rw.lim.MaxFormBytes, d.name)
			}
			rw.formLeft -= grown
			if err := rw.reserve(2 * grown); err != nil {
				return err
			}
		}
		value = []byte(s)
	}
	f := Field{Name: d.name, Value: string(value)}
	rw.res.Fields = append(rw.res.Fields, f)
	if rw.lim.Pass != nil && !rw.lim.Pass(d.name) {
		return nil
	}
	// Re-emitted in canonical form: the name as parsed here, the decoded
	// value, no other header, so that no parser can read it differently.
	return rw.emit(f)
}

// emit writes a field to the rewritten form, if there is one.
func (rw *rewriter) emit(f Field) error {
	if rw.out == nil {
		return nil
	}
	w, err := rw.out.CreateFormField(f.Name)
	if err == nil {
		_, err = io.WriteString(w, f.Value)
	}
	if err != nil {
		return fmt.Errorf("formstream: writing rewritten form: %w", err)
	}
	return nil
}

func (rw *rewriter) countField() error {
	rw.fields++
	if rw.fields > rw.lim.MaxFields {
		return fmt.Errorf("%w: more than %d", ErrTooManyFields, rw.lim.MaxFields)
	}
	return nil
}

// file hands a file part to store, makes sure it was read to the end and
// writes the replacement fields to out.
func (rw *rewriter) file(p *multipart.Part, d disposition, qp bool) error {
	body := &partBody{r: p}
	if qp {
		body.r = quotedprintable.NewReader(p)
	}
	if d.filename == "" {
		first := make([]byte, 1)
		switch _, err := io.ReadFull(body, first); {
		case err == io.EOF:
			return rw.countField() // an empty file input
		case err != nil:
			return rw.readError(err)
		}
		body.first = first
	}
	if rw.lim.MaxFiles > 0 && rw.res.Files >= rw.lim.MaxFiles {
		return fmt.Errorf("%w: more than %d", ErrTooManyFiles, rw.lim.MaxFiles)
	}

	f := &File{
		Field:       d.name,
		FileName:    d.filename,
		ContentType: p.Header.Get("Content-Type"),
		Header:      p.Header,
		Index:       rw.res.Files,
		Body:        body,
	}
	fields, err := rw.store(rw.ctx, f)
	if err != nil {
		err = fmt.Errorf("storing file %d (field %q): %w", f.Index, f.Field, err)
		if rw.src.err != nil || body.err != nil {
			// The body failed under store: report that first.
			return fmt.Errorf("%w; %w", rw.readError(body.err), err)
		}
		return fmt.Errorf("formstream: %w", err)
	}
	if body.err == nil {
		_, body.err = io.Copy(io.Discard, p)
	}
	if body.err != nil {
		return rw.readError(body.err)
	}
	rw.res.Files++

	for _, fl := range fields {
		if fl.Name == "" {
			return fmt.Errorf("formstream: storing file %d (field %q): store returned a field with no name", f.Index, f.Field)
		}
		n := int64(len(fl.Value))
		if n > rw.formLeft {
			return fmt.Errorf("%w: the form is longer than %d bytes at the fields replacing file %d (field %q)", ErrFormTooLarge, rw.lim.MaxFormBytes, f.Index, f.Field)
		}
		rw.formLeft -= n
		if err := rw.reserve(n + int64(len(fl.Name))); err != nil {
			return err
		}
		if err := rw.emit(fl); err != nil {
			return err
		}
	}
	return nil
}

// readError classifies an error met while parsing the form or reading a part:
// a failure of the body itself is [ErrRead], anything else [ErrMalformed].
func (rw *rewriter) readError(err error) error {
	if rw.src.err != nil {
		if rw.ctx.Err() != nil {
			return fmt.Errorf("%w: %w (%w)", ErrRead, rw.src.err, contextError(rw.ctx))
		}
		return fmt.Errorf("%w: %w", ErrRead, rw.src.err)
	}
	if errors.Is(err, multipart.ErrMessageTooLarge) || errors.Is(err, errHeaderTooLarge) {
		return fmt.Errorf("%w: part %d: %w", ErrFormTooLarge, rw.part, err)
	}
	if errors.Is(err, errBodyEnd) {
		return fmt.Errorf("%w: %w", ErrMalformed, errBodyEnd)
	}
	return fmt.Errorf("%w: part %d: %w", ErrMalformed, rw.part, err)
}

// contextError returns ctx.Err(), with the cancellation cause when there is
// a distinct one.
func contextError(ctx context.Context) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("%w: %w", err, cause)
	}
	return err
}

// partBody is the Body of a File. It remembers the first error it returns
// other than io.EOF, so that a store that swallows one cannot hide a broken
// form.
type partBody struct {
	r     io.Reader
	first []byte // read ahead to tell an empty file input from a file
	err   error
}

func (b *partBody) Read(p []byte) (int, error) {
	if len(b.first) > 0 && len(p) > 0 {
		n := copy(p, b.first)
		b.first = b.first[n:]
		return n, nil
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// headerBytes is the length of a part's header block as written out.
func headerBytes(h textproto.MIMEHeader) int64 {
	var n int64
	for k, vs := range h {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4) // "k: v\r\n"
		}
	}
	return n
}
