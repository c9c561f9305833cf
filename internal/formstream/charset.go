package formstream

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
)

// Browsers send field names, file names and values as UTF-8 (or in the
// page's charset, which the gateway forwards byte for byte). Other clients
// use the encodings of RFC 5987 (filename*=ISO-8859-1''%A3.txt), RFC 2047
// (name="=?utf-8?B?w6k=?=", as .NET's MultipartFormDataContent does) or a
// charset parameter on a field's Content-Type. Those are decoded here to
// UTF-8, because what declared them (the parameter, the Content-Type) is not
// forwarded.

// param is one parameter of a header value, its name lower-cased and its
// value as written (quotes removed, escapes kept).
type param struct {
	name, value string
}

// rawParams returns the parameters of a header value that
// [mime.ParseMediaType] accepted ("form-data; name=x; filename*=…"), in
// order, as written: "name*" and "name*0" are reported as such.
func rawParams(v string) []param {
	var ps []param
	_, rest, ok := strings.Cut(v, ";")
	for ok {
		rest = strings.TrimLeft(rest, " \t")
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			break
		}
		p := param{name: strings.ToLower(strings.TrimSpace(rest[:eq]))}
		rest = strings.TrimLeft(rest[eq+1:], " \t")
		if strings.HasPrefix(rest, `"`) {
			// Skip the quoted string, escapes included.
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' {
					i++
				}
			}
			p.value = rest[1:min(i, len(rest))]
			rest = rest[min(i+1, len(rest)):]
		} else {
			value, _, _ := strings.Cut(rest, ";")
			p.value = strings.TrimRight(value, " \t")
		}
		ps = append(ps, p)
		_, rest, ok = strings.Cut(rest, ";")
	}
	return ps
}

// decodeExtValue decodes an RFC 5987 ext-value, charset'language'pct-text,
// to UTF-8. The charset may be any the WHATWG Encoding Standard names
// (UTF-8, ISO-8859-1, windows-1252, Shift_JIS, …); the language is ignored.
func decodeExtValue(v string) (string, error) {
	charset, rest, ok := strings.Cut(v, "'")
	if !ok {
		return "", errors.New("no charset")
	}
	_, text, ok := strings.Cut(rest, "'")
	if !ok {
		return "", errors.New("no language part")
	}
	raw, err := url.PathUnescape(text)
	if err != nil {
		return "", err
	}
	return toUTF8(charset, raw)
}

// wordDecoder decodes RFC 2047 encoded words in any charset [toUTF8] knows.
var wordDecoder = &mime.WordDecoder{
	CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
		enc, err := lookupCharset(charset)
		if err != nil {
			return nil, err
		}
		return enc.NewDecoder().Reader(input), nil
	},
}

// decodeWords decodes the RFC 2047 encoded words in s. Text that is not an
// encoded word is kept. It refuses a charset it does not know, and a result
// that holds encoded words again (encoded twice): an application that
// decodes names itself would then read another name than the one checked.
func decodeWords(s string) (string, error) {
	if !strings.Contains(s, "=?") {
		return s, nil
	}
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		return "", fmt.Errorf("RFC 2047 encoded words in %q: %w", s, err)
	}
	if d != s && strings.Contains(d, "=?") {
		if again, err := wordDecoder.DecodeHeader(d); err != nil || again != d {
			return "", fmt.Errorf("%q holds RFC 2047 encoded words twice", s)
		}
	}
	return d, nil
}

// toUTF8 converts text in the named charset to UTF-8. UTF-8 and US-ASCII
// are returned unchanged.
func toUTF8(charset, text string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(charset)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return text, nil
	}
	enc, err := lookupCharset(charset)
	if err != nil {
		return "", err
	}
	out, err := enc.NewDecoder().String(text)
	if err != nil {
		return "", fmt.Errorf("decoding %s: %w", charset, err)
	}
	return out, nil
}

// lookupCharset finds a charset by any of its WHATWG labels.
func lookupCharset(charset string) (encoding.Encoding, error) {
	enc, err := htmlindex.Get(strings.TrimSpace(charset))
	if err != nil || enc == nil {
		return nil, fmt.Errorf("unknown charset %q", charset)
	}
	return enc, nil
}

// valueCharset returns the charset a plain field's Content-Type declares
// for its value, "" when it declares none or UTF-8/US-ASCII (the value is
// then forwarded as sent).
func valueCharset(contentType string) (string, error) {
	if contentType == "" {
		return "", nil
	}
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		// An unparseable Content-Type declares nothing Go can read; the
		// value is forwarded as sent, as before.
		return "", nil
	}
	cs := strings.ToLower(strings.TrimSpace(params["charset"]))
	switch cs {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return "", nil
	}
	if _, err := lookupCharset(cs); err != nil {
		return "", err
	}
	return cs, nil
}
