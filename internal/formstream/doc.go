// Package formstream reads a multipart/form-data request body as a stream and
// rewrites it on the fly: every file part is handed to a store callback, which
// saves it (to S3, in the gateway) and returns text fields that take the
// file's place in the form forwarded to the upstream application. This is the
// model of nginx-upload-module: the application receives an ordinary form in
// which "avatar" has become, say, "avatar.name", "avatar.key" and
// "avatar.size", and never sees a file byte.
//
// # Usage
//
//	boundary, err := formstream.Boundary(r.Header.Get("Content-Type"))
//	// err: ErrNotMultipart → 415, ErrMalformed → 400
//	mw := multipart.NewWriter(pipeToUpstream)
//	res, err := formstream.Rewrite(r.Context(), r.Body, boundary, limits, store, mw)
//	// on success: mw.Close(), then send the upstream request with
//	// Content-Type: mw.FormDataContentType()
//
// Rewrite does not close the [multipart.Writer]: the caller closes it after a
// successful Rewrite (that writes the closing boundary) and abandons the
// upstream request after a failed one.
//
// # What counts as a file
//
// A part is a file when its Content-Disposition is "form-data" and carries a
// "filename" or "filename*" parameter. Anything else with a name is a plain
// field. The file name is taken from the header as sent: Windows paths and
// directory components are kept (the store decides what to do with them).
// An RFC 5987 "filename*" parameter is decoded and wins over "filename":
//
//	Content-Disposition: form-data; name="doc"; filename="EUR.txt"; filename*=UTF-8''%E2%82%AC.txt
//
// gives the file name "€.txt". Its charset may be any the WHATWG Encoding
// Standard names (UTF-8, ISO-8859-1, windows-1252, Shift_JIS, …); one that
// is unknown makes the part malformed.
//
// # Charsets
//
// Names and values in UTF-8, as browsers send them, are forwarded byte for
// byte. What other clients declare is decoded to UTF-8, because the
// declaration itself is not forwarded: RFC 2047 encoded words in a field
// name or a file name ("=?utf-8?B?w6k=?=", sent by .NET's
// MultipartFormDataContent), and a plain field's Content-Type charset
// ("text/plain; charset=iso-8859-1"). A name in an unknown charset, or
// encoded twice (an application that decodes names would read another name
// than the one checked), is malformed; so is a value in an unknown charset.
// A file name that only looks encoded is kept as sent.
//
// An empty file input — filename="" and no bytes, which browsers send for a
// file input the user left alone — is skipped, as nginx-upload-module does:
// store is not called and nothing is written in its place. A part with
// filename="" but some content, or a named file with no content, is stored.
//
// # What the upstream receives
//
// The rewritten form has a new boundary (the writer's) and CRLF line endings.
// Plain fields are re-emitted in their original order in canonical form:
//
//	Content-Disposition: form-data; name="<name as parsed>"
//
// and nothing else, with the decoded value: no Content-Type (Rack reads a
// named part with a Content-Type as a file), no Content-Transfer-Encoding (a
// quoted-printable value is forwarded decoded), no other header and no other
// Content-Disposition parameter. Each file part is replaced, at its
// position, by the fields store returned, written the same way. Anything
// after the closing boundary (the epilogue) is neither read nor forwarded.
// Keep the writer's random boundary (do not call SetBoundary): field values
// are copied as sent, and a boundary the client could guess would let it
// forge parts inside a value.
//
// Because the upstream parses the gateway's re-framing rather than the
// client's bytes, it sees exactly the parts the gateway saw. To keep it so,
// parts that could be read differently by another parser are rejected as
// malformed rather than forwarded: a part with two Content-Disposition
// headers; an extended (RFC 2231) parameter other than "filename*", such as
// name* (Go decodes it and lets it win over name, PHP ignores it); a name
// with a control character (PHP cuts it at NUL), a quote or a backslash
// (quoting rules differ; browsers send them as %22 and %5C); a name longer
// than [MaxNameBytes] (1 KiB; names are compared under several parsers'
// rules, and a bound keeps that cheap); a "filename*" or an RFC 2047 name
// that cannot be decoded (see Charsets); a
// plain field whose Content-Type is multipart/* (the RFC 2388 nested
// multipart/mixed form); and a Content-Transfer-Encoding other than 7bit,
// 8bit, binary or quoted-printable. Quoted-printable (which RFC 7578
// deprecates and browsers never send) is decoded for the store, for
// Result.Fields and for the upstream. The parts are read with
// [multipart.Reader.NextRawPart] so that the gateway sees the
// Content-Transfer-Encoding header and decides itself.
//
// Limits.Pass selects the plain fields forwarded (the others are read and
// returned in Result.Fields, but not written to out), like nginx's
// upload_pass_form_field.
//
// Field names that mean the same to a parser that rewrites them (PHP turns
// "a.b" and "a b" into "a_b"; Rack reads "[a]" as "a") are not the
// concern of [Rewrite]: see [Reserved].
//
// # Limits and memory
//
// File bodies are never buffered: store reads them straight from the request
// stream, and memory does not depend on file sizes. Plain field values are
// held in memory, each up to Limits.MaxFieldBytes (default 1 MiB) and all
// together, with the replacement fields, up to Limits.MaxFormBytes (default
// 10 MiB); a field is read up to one byte past its limit and no further.
// Limits.MaxFields (default 1000) bounds the plain parts, skipped empty file
// inputs included, and Limits.MaxFiles (default unlimited) the files, counted
// before store is called. A part's header block is bounded by
// Limits.MaxHeaderBytes (default 16 KiB) before the parser buffers it. With
// Limits.Reserve, every byte the form keeps (part headers, field values
// counted twice, replacement fields) is reserved before it is kept, and only
// what actually arrived: field values are read through one 4 KiB buffer per
// form (reserved once), so a shared memory budget can bound forms too, and a
// form of many tiny fields costs about twice its size. Limits.CheckName
// sees each plain field's name as soon as its headers are read, so a field the
// caller refuses stops the form before any later file is stored. The request
// body as a whole is not bounded here: wrap it in [net/http.MaxBytesReader].
//
// # Errors
//
// Errors are returned wrapped; test them with [errors.Is] and [errors.As].
// Callers should map them to HTTP statuses in this order:
//
//   - [context.Canceled] (the client went away or the request was cancelled): 499.
//   - [*net/http.MaxBytesError], from a body wrapped in MaxBytesReader: 413.
//   - [ErrTooManyFiles], [ErrTooManyFields], [ErrFieldTooLarge], [ErrFormTooLarge]: 413.
//   - [ErrNotMultipart] (from [Boundary]): 415.
//   - [ErrMalformed] and [ErrRead]: 400.
//   - anything else is store's error (wrapped, so the store's own sentinels and
//     types still match) or the writer's, for the caller to map (502/504 for
//     S3 failures, for instance).
//
// When reading a file body fails while store runs, the error wraps both the
// read failure ([ErrRead] or [ErrMalformed]) and store's error, so a client
// that hangs up mid-upload is not reported as a storage failure. A replacement
// field that pushes the form over MaxFormBytes is detected only after store
// has saved the file; the caller should delete what store saved whenever
// Rewrite fails.
//
// Rewrite stops at the first error. It does not read the rest of the body
// then, and it stops at once when store fails.
package formstream
