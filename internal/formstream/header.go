package formstream

import (
	"errors"
	"fmt"
	"mime"
	"net/textproto"
	"strings"
)

// disposition is what a part's Content-Disposition says about it.
type disposition struct {
	name     string
	filename string
	file     bool // a filename parameter is present, maybe empty
}

// parseDisposition reads the Content-Disposition of a part. It is stricter
// than [multipart.Part.FormName] so that the gateway and the upstream cannot
// disagree on what is a file: see the package documentation.
func parseDisposition(h textproto.MIMEHeader) (disposition, error) {
	v := h.Values("Content-Disposition")
	switch len(v) {
	case 0:
		return disposition{}, errors.New("no Content-Disposition")
	case 1:
	default:
		return disposition{}, fmt.Errorf("%d Content-Disposition headers", len(v))
	}
	typ, params, err := mime.ParseMediaType(v[0])
	if err != nil {
		return disposition{}, fmt.Errorf("Content-Disposition %q: %w", v[0], err)
	}
	if typ != "form-data" {
		return disposition{}, fmt.Errorf("Content-Disposition is %q, not form-data", typ)
	}
	// Parsers disagree on extended parameters: Go decodes name* and lets
	// it win over name, PHP ignores it. Only filename* is accepted: it is
	// decoded into filename and makes the part a file, which is never
	// forwarded.
	var rawFilenameStar string
	for _, p := range rawParams(v[0]) {
		if strings.Contains(p.name, "*") && p.name != "filename*" {
			return disposition{}, fmt.Errorf("Content-Disposition %q has the extended parameter %s", v[0], p.name)
		}
		if p.name == "filename*" {
			rawFilenameStar = p.value
		}
	}
	name, err := decodeWords(params["name"])
	if err != nil {
		return disposition{}, fmt.Errorf("Content-Disposition %q: field name: %w", v[0], err)
	}
	d := disposition{name: name}
	if d.name == "" {
		return disposition{}, fmt.Errorf("Content-Disposition %q has no name", v[0])
	}
	if err := checkName(d.name); err != nil {
		return disposition{}, err
	}
	// filename* (RFC 5987) wins over filename. ParseMediaType decodes it
	// only in UTF-8 or US-ASCII and drops it silently otherwise, so it is
	// decoded here, in any charset browsers know. One that cannot be
	// decoded is refused: a parser that could would see a file where this
	// one sees a field. (A name that contains "filename*" is refused too, a
	// price worth paying.)
	d.filename, d.file = params["filename"]
	switch {
	case rawFilenameStar != "":
		fn, err := decodeExtValue(rawFilenameStar)
		if err != nil {
			return disposition{}, fmt.Errorf("field %q: cannot decode filename* in %q: %w", d.name, v[0], err)
		}
		d.filename, d.file = fn, true
	case strings.Contains(strings.ToLower(v[0]), "filename*"):
		return disposition{}, fmt.Errorf("field %q: cannot decode filename* in %q", d.name, v[0])
	}
	if d.file && rawFilenameStar == "" {
		// A plain filename may carry RFC 2047 encoded words (sent by
		// .NET's MultipartFormDataContent, among others). One that does
		// not decode is kept as sent: it is only ever a value.
		if fn, err := decodeWords(d.filename); err == nil {
			d.filename = fn
		}
	}
	return d, nil
}

// MaxNameBytes is the longest field name accepted, file parts included.
// Names are compared under several parsers' rules (see [Reserved]); a bound
// keeps that cheap whatever a client sends.
const MaxNameBytes = 1 << 10

// checkName refuses field names that parsers read differently: with a
// control character (PHP cuts a name at NUL), or with a quote or backslash
// (quoting rules differ; browsers send them as %22 and %5C). It also refuses
// names longer than MaxNameBytes.
func checkName(name string) error {
	if len(name) > MaxNameBytes {
		return fmt.Errorf("field name %.32q… is longer than %d bytes", name, MaxNameBytes)
	}
	if i := strings.IndexFunc(name, func(r rune) bool {
		return r < 0x20 || r == 0x7f || r == '"' || r == '\\'
	}); i >= 0 {
		return fmt.Errorf("field name %q has the character %q", name, name[i])
	}
	return nil
}

// quotedPrintable reports whether a part's body is quoted-printable. It
// refuses encodings other than the identity ones and quoted-printable, the
// only one the standard library decodes.
func quotedPrintable(h textproto.MIMEHeader) (bool, error) {
	v := h.Values("Content-Transfer-Encoding")
	switch len(v) {
	case 0:
		return false, nil
	case 1:
	default:
		return false, fmt.Errorf("%d Content-Transfer-Encoding headers", len(v))
	}
	switch strings.ToLower(strings.TrimSpace(v[0])) {
	case "7bit", "8bit", "binary":
		return false, nil
	case "quoted-printable":
		return true, nil
	}
	return false, fmt.Errorf("unsupported Content-Transfer-Encoding %q", v[0])
}

// isMultipart reports whether a Content-Type is multipart/*.
func isMultipart(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(mt)), "multipart/")
}

// checkBoundary checks a boundary against RFC 2046, section 5.1.1: 1 to 70
// characters out of bchars, not ending with a space.
func checkBoundary(b string) error {
	if len(b) < 1 || len(b) > 70 {
		return fmt.Errorf("%w: boundary %q is not 1 to 70 characters long", ErrMalformed, b)
	}
	for i := 0; i < len(b); i++ {
		if !isBChar(b[i]) {
			return fmt.Errorf("%w: boundary %q has an invalid character %q", ErrMalformed, b, b[i])
		}
	}
	if b[len(b)-1] == ' ' {
		return fmt.Errorf("%w: boundary %q ends with a space", ErrMalformed, b)
	}
	return nil
}

func isBChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("'()+_,-./:=? ", c) >= 0
}
