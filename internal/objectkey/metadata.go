package objectkey

import (
	"encoding/base64"
	"fmt"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// RFC 2047 limits an encoded word to 75 characters. "=?UTF-8?B?" and "?="
// take 12, which leaves 63 base64 characters: 15 groups of 4, that is 45
// bytes of text per word.
const (
	wordPrefix   = "=?UTF-8?B?"
	wordSuffix   = "?="
	maxWordBytes = 45
)

// MetadataValue makes s safe as an S3 user metadata value, which is sent as
// an HTTP header. Control characters (CR, LF, NUL, tab, ...) are removed,
// invalid UTF-8 becomes U+FFFD, and format characters such as U+202E are
// kept, so that the value stays faithful to what the client sent. The
// result is s itself when s is printable ASCII; otherwise it is s encoded as
// one or more RFC 2047 words, "=?UTF-8?B?...?=", separated by spaces. Printable ASCII that a decoder
// would misread is encoded too: a value containing "=?", or with a leading
// or trailing space (HTTP drops those).
//
// The result is at most [MaxMetadataValueLen] bytes: a longer value is cut
// at a character boundary before it is encoded, so it decodes to a prefix of
// the input.
func MetadataValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cc, r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if !needsEncoding(s) {
		return s[:min(len(s), MaxMetadataValueLen)]
	}
	// Encoding only grows the text, so no more than MaxMetadataValueLen
	// bytes of it can fit. Find the longest prefix whose encoding fits.
	s = truncate(s, MaxMetadataValueLen)
	if enc := encodeWords(s); len(enc) <= MaxMetadataValueLen {
		return enc
	}
	lo, hi := 0, len(s) // encodeWords(truncate(s, lo)) fits, hi does not
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if len(encodeWords(truncate(s, mid))) <= MaxMetadataValueLen {
			lo = mid
		} else {
			hi = mid
		}
	}
	return encodeWords(truncate(s, lo))
}

func needsEncoding(s string) bool {
	return strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ") || strings.Contains(s, "=?") ||
		strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r > 0x7e })
}

// encodeWords encodes s as RFC 2047 "B" words of at most 75 characters,
// never splitting a character across two words.
func encodeWords(s string) string {
	var b strings.Builder
	for s != "" {
		n := 0
		for n < len(s) {
			_, size := utf8.DecodeRuneInString(s[n:])
			if n+size > maxWordBytes {
				break
			}
			n += size
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(wordPrefix)
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(s[:n])))
		b.WriteString(wordSuffix)
		s = s[n:]
	}
	return b.String()
}

// DecodeMetadataValue reverses [MetadataValue]: it decodes the RFC 2047
// words in s, as S3 returns them for non-ASCII metadata, and returns plain
// text unchanged. It fails only for a word in a character set other than
// UTF-8, ISO-8859-1 and US-ASCII.
func DecodeMetadataValue(s string) (string, error) {
	var dec mime.WordDecoder
	out, err := dec.DecodeHeader(s)
	if err != nil {
		return "", fmt.Errorf("decoding metadata value: %v", err)
	}
	return out, nil
}

// PercentEncode returns s with every byte outside the RFC 5987 attr-char set
// (ASCII letters, digits and "!#$&+-.^_`|~") written as %XX, the form of a
// filename* parameter value (the part after the charset and language).
// Invalid UTF-8 becomes U+FFFD first, so the result always decodes to UTF-8.
func PercentEncode(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAttrChar(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func isAttrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}

// ContentDisposition returns a Content-Disposition header value that makes a
// browser download the object under filename:
//
//	attachment; filename="<ASCII name>"; filename*=UTF-8''<percent-encoded name>
//
// filename goes through [SanitizeFilename] first. The ASCII name, for
// clients that ignore filename*, has accents removed ("é" becomes "e") and
// other non-ASCII characters replaced, and is itself a sanitised name.
func ContentDisposition(filename string) string {
	name := SanitizeFilename(filename)
	return `attachment; filename="` + asciiFallback(name) + `"; filename*=UTF-8''` + PercentEncode(name)
}

// asciiFallback folds a sanitised name to ASCII. The result contains no '"'
// or '\', so it can be quoted as is.
func asciiFallback(name string) string {
	folded := strings.Map(func(r rune) rune {
		switch {
		case unicode.Is(unicode.Mn, r):
			return -1
		case r >= utf8.RuneSelf:
			return '_'
		}
		return r
	}, norm.NFD.String(name))
	return SanitizeFilename(folded)
}
