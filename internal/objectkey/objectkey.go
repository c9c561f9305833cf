// Package objectkey makes S3 object keys, and the metadata stored next to
// them, safe to build from values a client controls: file names, headers,
// user ids.
//
// The gateway expands an operator's key template such as
//
//	uploads/{http.auth.user.id}/{time.now.year}/{upload.uuid}{upload.ext}
//
// Two layers keep the result inside the bucket prefix a role may write to:
//
//  1. Every client value that becomes part of a key goes through
//     [SanitizeFilename] (a whole segment) or [Ext] (an extension) before it
//     is substituted, and every identity value (a user id or name) through
//     [EscapeSegment]. Their output never contains "/" or "\", so one value
//     can never add a path level or climb one.
//  2. The expanded key goes through [Clean], which rejects what the first
//     layer cannot see: a ".." produced by the template itself, a key outside
//     the prefix, a key longer than S3 allows.
//
// # What a sanitised file name looks like
//
// [SanitizeFilename] keeps the last element of a path ("C:\Users\me\a.txt"
// and "../../etc/passwd" become "a.txt" and "passwd"), normalises it to
// Unicode NFC, drops control and format characters (NUL, U+202E RIGHT-TO-LEFT
// OVERRIDE, zero-width spaces, soft hyphens), keeps letters, digits and marks
// of every script (é, 中文, кириллица, but not emoji) and ". - _ ( ) + ," and
// space, and turns anything else into "_". Runs of "_" and spaces collapse,
// leading dots and spaces and trailing dots and spaces are removed (so
// ".htaccess" is stored as "htaccess" and cannot act as a dot file if the
// bucket is ever synced to a disk), Windows device names get a "_" in front
// ("CON.txt" becomes "_CON.txt"), and the name is cut to 200 bytes at a
// character boundary, keeping its extension. A name left with nothing
// becomes "file".
//
// # What Clean accepts
//
// [Clean] strips control and format characters, turns "\" into "/", drops
// empty and "." segments, and returns an error wrapping [ErrInvalidKey] for:
//
//   - a ".." segment, or any segment made only of dots and spaces such as
//     "..." or ".. " (Windows reads those as ".."), anywhere in the key or
//     the prefix. These are never dropped silently: a template that yields
//     them is an attack or a bug;
//   - a key that is not below the prefix (also [ErrOutsidePrefix]);
//   - a key that is empty, not valid UTF-8, longer than 1024 bytes, or has a
//     segment longer than 255 bytes.
//
// A prefix names a directory: "uploads" and "uploads/" are the same prefix,
// "uploads/x" is inside it, and "uploads-evil/x" and "uploads" itself are
// not. The empty prefix is the whole bucket. Clean does not add the prefix;
// the template is expected to start with it.
//
// Nothing here decodes URL escapes: "%2e%2e/x" is kept as the literal
// segment "%2e%2e", which S3 stores as is and no S3 client treats as "..".
// Decoding, if any, belongs to whoever produces the value, before Clean.
//
// # Metadata and downloads
//
// S3 user metadata travels as HTTP headers (x-amz-meta-*), which must be
// ASCII. [MetadataValue] returns printable ASCII unchanged and encodes
// anything else as RFC 2047 "=?UTF-8?B?...?=" words, the form S3 itself
// uses when it returns non-ASCII metadata; [DecodeMetadataValue] reverses
// it. Values are cut so the result is at most 1024 bytes; S3 also limits
// all user metadata of an object to 2 KB in total, which the caller must
// keep in mind when it stores several values. [PercentEncode] gives the RFC
// 5987 form ("original-name-utf8" metadata), and [ContentDisposition] a
// download header with an ASCII fallback name and the exact UTF-8 name.
package objectkey

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// Limits applied by this package.
const (
	// MaxFilenameLen is the longest [SanitizeFilename] result, in bytes.
	MaxFilenameLen = 200
	// MaxExtLen is the longest extension [Ext] returns, in bytes, not
	// counting the dot.
	MaxExtLen = 16
	// MaxSegmentLen is the longest key segment [Clean] accepts, in bytes: the
	// file name limit of common file systems, so that a bucket can be synced
	// to a disk.
	MaxSegmentLen = 255
	// MaxMetadataValueLen is the longest [MetadataValue] result, in bytes.
	MaxMetadataValueLen = 1024
)

// Errors returned by [Clean]. Every error it returns wraps ErrInvalidKey; a
// key outside the prefix also wraps ErrOutsidePrefix. The caller decides the
// status: a key built from a trusted template should never fail, so a
// failure is either a client value the template did not sanitise (400) or a
// configuration error (500).
var (
	ErrInvalidKey    = errors.New("invalid object key")
	ErrOutsidePrefix = errors.New("outside the allowed prefix")
)

// fallbackName replaces a file name that sanitises to nothing.
const fallbackName = "file"

// SanitizeFilename turns a client-supplied file name, possibly a whole path,
// into a name that is safe as one segment of an object key. The result is
// never empty, never "." or "..", never contains "/", "\" or control
// characters, is valid UTF-8 in NFC, and is at most [MaxFilenameLen] bytes.
// SanitizeFilename is idempotent. See the package documentation for the
// rules.
func SanitizeFilename(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD") // U+FFFD then becomes "_"
	name = norm.NFC.String(dropControl(name))

	// Last path element; a trailing separator does not count.
	name = strings.TrimRight(name, `/\`)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}

	var b strings.Builder
	b.Grow(len(name))
	// pending is the separator owed before the next kept character: 0, ' '
	// or '_'. A run of spaces becomes one space, a run of spaces and
	// underscores one underscore.
	var pending rune
	for _, r := range name {
		switch {
		case r == '_' || !allowedRune(r) && !unicode.Is(unicode.Zs, r):
			pending = '_'
		case r == ' ' || unicode.Is(unicode.Zs, r):
			if pending == 0 {
				pending = ' '
			}
		default:
			if pending != 0 {
				b.WriteRune(pending)
				pending = 0
			}
			b.WriteRune(r)
		}
	}
	if pending == '_' {
		b.WriteByte('_')
	}
	name = strings.Trim(b.String(), ". ")

	if isReserved(name) {
		name = "_" + name
	}
	name = capName(name, MaxFilenameLen)
	if stem, ext := splitExt(name); strings.Trim(stem, "_") == "" {
		name = fallbackName + ext
	}
	return name
}

// EscapeSegment turns an identity value (a user id, a user name, an email)
// into exactly one key segment, keeping distinct values distinct: unlike
// [SanitizeFilename], which keeps only the last path element ("victim/x"
// becomes "x"), it percent-encodes (%XX per byte) "%", "/", "\", control
// and format characters and invalid UTF-8, and every character of a value
// made only of dots and spaces ("..", ". ."). So "a/../b" becomes
// "a%2F..%2Fb" and ".." becomes "%2E%2E". Anything else, letters of every
// script included, is kept as is; the empty string stays empty. A result
// longer than [MaxSegmentLen] is left for [Clean] to refuse.
func EscapeSegment(v string) string {
	all := strings.Trim(v, ". ") == "" // "..", ". ": Clean would refuse them
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		switch {
		case all, r == '%', r == '/', r == '\\', r == utf8.RuneError && size == 1, isControl(r):
			for _, c := range []byte(v[i : i+size]) {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		default:
			b.WriteString(v[i : i+size])
		}
		i += size
	}
	return b.String()
}

// allowedRune reports whether r is kept as is in a file name.
func allowedRune(r rune) bool {
	switch r {
	case '.', '-', '_', '(', ')', '+', ',':
		return true
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// dropControl removes control (Cc) and format (Cf) characters.
func dropControl(s string) string {
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return -1
		}
		return r
	}, s)
}

func isControl(r rune) bool {
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r)
}

// reservedNames are the Windows device names, which Windows treats as
// devices whatever extension follows ("con.txt").
var reservedNames = map[string]bool{
	"CON": true, "PRN": true, "AUX": true, "NUL": true,
	"COM1": true, "COM2": true, "COM3": true, "COM4": true, "COM5": true,
	"COM6": true, "COM7": true, "COM8": true, "COM9": true,
	"LPT1": true, "LPT2": true, "LPT3": true, "LPT4": true, "LPT5": true,
	"LPT6": true, "LPT7": true, "LPT8": true, "LPT9": true,
}

func isReserved(name string) bool {
	stem, _, _ := strings.Cut(name, ".")
	return reservedNames[strings.ToUpper(strings.TrimRight(stem, " "))]
}

// splitExt splits a sanitised name into stem and extension (with its dot).
// An extension is what follows the last dot when that is 1 to MaxExtLen
// ASCII letters and digits; otherwise the whole name is the stem.
func splitExt(name string) (stem, ext string) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || !validExt(name[i+1:]) {
		return name, ""
	}
	return name[:i], name[i:]
}

func validExt(e string) bool {
	return len(e) > 0 && len(e) <= MaxExtLen && !strings.ContainsFunc(e, func(c rune) bool {
		return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9')
	})
}

// capName cuts name to at most limit bytes, keeping its extension, without
// splitting a character (a base letter and its combining marks stay
// together when possible).
func capName(name string, limit int) string {
	if len(name) <= limit {
		return name
	}
	stem, ext := splitExt(name)
	stem = truncate(stem, limit-len(ext))
	stem = strings.TrimRight(stem, ". ")
	return stem + ext
}

// truncate returns the longest prefix of s of at most n bytes that ends on
// a character boundary and, when possible, does not separate a character
// from the combining marks that follow it ("e" + U+0301).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	for i := n; i > 0; {
		if r, _ := utf8.DecodeRuneInString(s[i:]); !unicode.IsMark(r) {
			n = i
			break
		}
		_, size := utf8.DecodeLastRuneInString(s[:i])
		i -= size
	}
	return s[:n]
}

// Ext returns the lowercased extension of the sanitised name, with its dot
// (".pdf"), or "" when the name has none or when it is not 1 to
// [MaxExtLen] ASCII letters and digits. Only the last extension counts:
// "a.tar.gz" gives ".gz".
func Ext(name string) string {
	_, ext := splitExt(SanitizeFilename(name))
	return strings.ToLower(ext)
}

// Clean checks and tidies an expanded object key so that it is inside
// prefix, and returns it without a leading "/". The errors it returns wrap
// [ErrInvalidKey] (and [ErrOutsidePrefix]); see the package documentation.
func Clean(prefix, key string) (string, error) {
	p, err := segments(prefix)
	if err != nil {
		return "", fmt.Errorf("%w: prefix %q: %v", ErrInvalidKey, prefix, err)
	}
	k, err := segments(key)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	if len(k) == 0 {
		return "", fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(k) <= len(p) || !slices.Equal(k[:len(p)], p) {
		return "", fmt.Errorf("%w: %w: key %q, prefix %q", ErrInvalidKey, ErrOutsidePrefix,
			strings.Join(k, "/"), strings.Join(p, "/"))
	}
	out := strings.Join(k, "/")
	if len(out) > s3limits.MaxKeyLen {
		return "", fmt.Errorf("%w: key is %d bytes, longer than %d", ErrInvalidKey, len(out), s3limits.MaxKeyLen)
	}
	return out, nil
}

// segments splits a key or prefix into its non-empty, non-"." segments.
func segments(s string) ([]string, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("not valid UTF-8")
	}
	s = strings.ReplaceAll(dropControl(s), `\`, "/")
	var out []string
	for seg := range strings.SplitSeq(s, "/") {
		switch {
		case seg == "" || seg == ".":
			continue
		case strings.Trim(seg, ". ") == "":
			return nil, fmt.Errorf("segment %q climbs or is blank", seg)
		case len(seg) > MaxSegmentLen:
			return nil, fmt.Errorf("segment of %d bytes, longer than %d", len(seg), MaxSegmentLen)
		}
		out = append(out, seg)
	}
	return out, nil
}
