// Package contenttype decides which Content-Type an uploaded object is
// stored with, and refuses uploads whose bytes are not of an allowed type,
// whatever the client declares.
//
// # Configuration
//
// An [Allowlist] is built from patterns such as
//
//	image/*  application/pdf  text/plain
//
// "type/subtype" matches that type, "type/*" every subtype, and "*/*" (or an
// empty list) everything. Matching is case-insensitive and parameters
// ("; charset=utf-8") are ignored. "*/png", "image", "image/p*" are errors.
//
// # How a body is checked
//
// The caller passes the first [SniffLen] bytes of the body and the
// Content-Type the client declared to [Allowlist.Check]. The bytes are
// identified with github.com/gabriel-vasile/mimetype, which knows file
// formats as a tree: a DOCX is a kind of ZIP, CSV, JSON, HTML and SVG are
// kinds of text/plain, and everything is a kind of application/octet-stream.
//
// A type is allowed when it matches a pattern itself, by one of its aliases,
// or through a parent in that tree: "application/zip" admits DOCX and JAR,
// "text/plain" admits CSV and JSON. Two exceptions keep this from admitting
// too much. The root, application/octet-stream, is nobody's parent here, so
// "application/*" does not admit a PNG. And markup (HTML, SVG, XML and the
// XML formats such as XHTML and RSS) does not inherit from text/plain,
// because browsers run scripts in it: "text/plain" does not admit HTML.
// Patterns still match by name, so "text/*" does admit text/html and
// text/xml, and "image/*" admits image/svg+xml, which can carry scripts too:
// list the image types you want if objects may be shown in a browser.
//
//  1. The declared type is used when it is present, parseable, not a
//     wildcard and not application/octet-stream. It must be allowed, else
//     [ErrNotAllowed], and it must agree with the bytes, else [ErrMismatch].
//     It agrees when it is on the detected type's branch of the tree: the
//     detected type, one of its aliases, one of its parents (text/plain
//     declared for CSV bytes) or one of its descendants (a DOCX declared for
//     bytes mimetype only saw as ZIP); or when the bytes are
//     generic text (text/plain) and the declared type is textual (text/*,
//     application/json, application/xml, application/javascript,
//     application/x-ndjson, application/yaml, or any +json or +xml type),
//     which mimetype cannot always tell apart; or when the bytes are unknown
//     (application/octet-stream) and the declared type is one mimetype does
//     not know, so it could not have recognised it. Anything else, such as
//     image/png declared for an executable or for HTML, is a mismatch.
//  2. The detected type must be allowed, else [ErrNotAllowed], unless
//     mimetype could not tell (it detected text/plain or
//     application/octet-stream) and a declared type passed step 1: then the
//     declared type says what the file is. So "text/csv" alone admits a CSV
//     file that mimetype saw as plain text, if the client says it is CSV.
//  3. The stored type is the declared one when it was used, otherwise the
//     detected one; lowercase, without parameters, except that a charset
//     declared for a text/* type is kept.
//
// With an allow-list that allows everything nothing is checked: Check
// returns the declared type, or the detected one when none was declared,
// and never fails.
//
// # Considerations
//
// An empty body is detected as text/plain (mimetype treats zero bytes as
// text). An allow-list without text/plain or text/* therefore refuses empty
// files, unless the client declares a textual type that is allowed; an empty
// body declared as image/png is a mismatch.
//
// Detection only sees the first [SniffLen] bytes: a DOCX whose "word/"
// entries start later is just a ZIP (it passes when the client declares the
// Office type and that type is allowed), and a text
// file with binary bytes after that point still passes as text.
// Sniffing guards against mislabelled and hostile uploads; it does not
// validate files. Serve stored objects with "X-Content-Type-Options:
// nosniff" and, for anything you did not list explicitly, as attachments.
//
// mimetype reports some formats under one name with aliases: WebM audio is
// video/webm (alias audio/webm), 3GPP audio is video/3gpp (alias
// audio/3gpp). Aliases count when a pattern names them exactly, but
// "audio/*" does not match video/webm.
package contenttype

import (
	"cmp"
	"errors"
	"fmt"
	"mime"
	"slices"
	"strings"

	"github.com/gabriel-vasile/mimetype"
)

// SniffLen is how many leading bytes of a body [Allowlist.Check] looks at:
// mimetype's read limit (4096 bytes in v1.4.16). Passing fewer makes
// detection less precise; more is ignored.
const SniffLen = 4096

// Errors returned by [Allowlist.Check], always wrapped with a message naming
// the types involved. Callers map both to 415 Unsupported Media Type.
var (
	// ErrNotAllowed means the detected or the declared type is not in the
	// allow-list.
	ErrNotAllowed = errors.New("content type not allowed")
	// ErrMismatch means the declared type is allowed but the bytes are
	// something else.
	ErrMismatch = errors.New("content type does not match the content")
)

const octetStream = "application/octet-stream"

// Allowlist is a set of content type patterns. Build it with
// [NewAllowlist]; it is safe for concurrent use. A nil *Allowlist allows
// everything.
type Allowlist struct {
	all   bool
	exact []string        // "image/png"
	types map[string]bool // "image" for "image/*"
}

// NewAllowlist parses patterns; see the package documentation. An empty
// list allows everything.
func NewAllowlist(patterns []string) (*Allowlist, error) {
	a := &Allowlist{all: len(patterns) == 0, types: map[string]bool{}}
	for _, p := range patterns {
		typ, sub, err := parsePattern(p)
		if err != nil {
			return nil, err
		}
		switch {
		case typ == "*":
			a.all = true
		case sub == "*":
			a.types[typ] = true
		default:
			a.exact = append(a.exact, typ+"/"+sub)
		}
	}
	return a, nil
}

func parsePattern(p string) (typ, sub string, err error) {
	mt, _, err := mime.ParseMediaType(p)
	if err != nil {
		return "", "", fmt.Errorf("content type pattern %q: %v", p, err)
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" {
		return "", "", fmt.Errorf("content type pattern %q: want type/subtype", p)
	}
	if typ == "*" && sub != "*" {
		return "", "", fmt.Errorf("content type pattern %q: a wildcard type needs a wildcard subtype", p)
	}
	if strings.Contains(typ, "*") && typ != "*" || strings.Contains(sub, "*") && sub != "*" {
		return "", "", fmt.Errorf("content type pattern %q: a wildcard must be a whole type or subtype", p)
	}
	return typ, sub, nil
}

// AllowsAll reports whether a allows every type, in which case
// [Allowlist.Check] never fails.
func (a *Allowlist) AllowsAll() bool { return a == nil || a.all }

// Allows reports whether the media type mt (parameters are ignored) is
// allowed by name, by one of its aliases or through a parent, as a
// declared type must be in [Allowlist.Check]. It is for callers that must
// fix an object's type before its bytes arrive, such as resumable uploads:
// "" or a wildcard is application/octet-stream. It does not look at any
// bytes; Check still must.
func (a *Allowlist) Allows(mt string) bool {
	decl, _, _ := parseDeclared(mt)
	return a.AllowsAll() || a.allowedDeclared(cmp.Or(decl, octetStream))
}

// allowedDeclared reports whether the declared media type mt (lowercase, no
// parameters) is allowed by name, by one of its aliases or through a parent.
func (a *Allowlist) allowedDeclared(mt string) bool {
	if a.match(mt) {
		return true
	}
	n := mimetype.Lookup(mt)
	return n != nil && a.allowedNode(n)
}

// Patterns returns the patterns of a, lowercase and without parameters
// ("image/png", "text/*"), sorted; nil when a allows every type. A client
// may use them to refuse a file before uploading it, but they match by
// name only: the parents and aliases that [Allowlist.Check] also accepts
// are not listed.
func (a *Allowlist) Patterns() []string {
	if a.AllowsAll() {
		return nil
	}
	out := slices.Clone(a.exact)
	for typ := range a.types {
		out = append(out, typ+"/*")
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Check decides the Content-Type to store for a body whose first bytes are
// head (at least [SniffLen] of them unless the body is shorter) and whose
// client declared the type declared (may be ""). It returns an error
// wrapping [ErrNotAllowed] or [ErrMismatch] when the upload must be refused.
// See the package documentation for the rules.
func (a *Allowlist) Check(declared string, head []byte) (string, error) {
	detected := mimetype.Detect(head)
	det := baseType(detected.String())
	decl, declParams, useDeclared := parseDeclared(declared)
	if !a.AllowsAll() {
		if useDeclared && !a.allowedDeclared(decl) {
			return "", fmt.Errorf("%w: declared %s", ErrNotAllowed, decl)
		}
		if useDeclared && !consistent(decl, mimetype.Lookup(decl), detected) {
			return "", fmt.Errorf("%w: declared %s, detected %s", ErrMismatch, decl, det)
		}
		// When mimetype could not tell, the declared type says more.
		generic := det == "text/plain" || det == octetStream
		if !(useDeclared && generic) && !a.allowedNode(detected) {
			return "", fmt.Errorf("%w: detected %s", ErrNotAllowed, det)
		}
	}
	if useDeclared {
		return formatType(decl, declParams), nil
	}
	return det, nil
}

// parseDeclared returns the lowercase media type and parameters of a
// declared Content-Type, and whether it should be used at all.
func parseDeclared(declared string) (string, map[string]string, bool) {
	mt, params, err := mime.ParseMediaType(declared)
	if err != nil {
		return "", nil, false
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" || strings.Contains(mt, "*") || mt == octetStream {
		return "", nil, false
	}
	return mt, params, true
}

// formatType renders a declared type for storage: lowercase, with only the
// charset parameter, and that only for text/*.
func formatType(mt string, params map[string]string) string {
	cs, ok := params["charset"]
	if !ok || cs == "" || !strings.HasPrefix(mt, "text/") {
		return mt
	}
	if s := mime.FormatMediaType(mt, map[string]string{"charset": strings.ToLower(cs)}); s != "" {
		return s
	}
	return mt
}

// baseType strips parameters and lowercases.
func baseType(s string) string {
	mt, _, _ := strings.Cut(s, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// match reports whether the media type mt (lowercase, no parameters)
// matches a pattern by name.
func (a *Allowlist) match(mt string) bool {
	typ, _, _ := strings.Cut(mt, "/")
	return a.types[typ] || slices.Contains(a.exact, mt)
}

// matchNode reports whether a node of the mimetype tree matches a pattern by
// its name or, for exact patterns, by one of its aliases (mimetype only
// exposes those through Is).
func (a *Allowlist) matchNode(n *mimetype.MIME) bool {
	return a.match(baseType(n.String())) || slices.ContainsFunc(a.exact, n.Is)
}

// allowedNode reports whether m or one of its parents other than the root
// matches; markup does not inherit from text/plain.
func (a *Allowlist) allowedNode(m *mimetype.MIME) bool {
	markup := isMarkup(m)
	for n := m; n != nil; n = n.Parent() {
		if n != m && n.Parent() == nil {
			break // the root, application/octet-stream, is everyone's parent
		}
		if n != m && markup && n.Is("text/plain") {
			continue
		}
		if a.matchNode(n) {
			return true
		}
	}
	return false
}

// isMarkup reports whether m is a format browsers may run scripts in: HTML,
// SVG, or XML and its descendants (XHTML, RSS, ...).
func isMarkup(m *mimetype.MIME) bool {
	if m.Is("text/html") || m.Is("image/svg+xml") {
		return true
	}
	for n := m; n != nil; n = n.Parent() {
		if n.Is("text/xml") {
			return true
		}
	}
	return false
}

// consistent reports whether a declared type agrees with the detected one;
// see rule 1 of the package documentation. declNode is mimetype's node for
// the declared type, or nil when mimetype does not know it. The root is on
// every branch and does not count.
func consistent(decl string, declNode, detected *mimetype.MIME) bool {
	for n := detected; n != nil && n.Parent() != nil; n = n.Parent() {
		if n.Is(decl) {
			return true // the detected type or a parent
		}
	}
	det := baseType(detected.String())
	if declNode != nil {
		for n := declNode.Parent(); n != nil && n.Parent() != nil; n = n.Parent() {
			if n.Is(det) {
				return true // a descendant of the detected type
			}
		}
	}
	switch det {
	case "text/plain":
		return isTextual(decl)
	case octetStream:
		return declNode == nil
	}
	return false
}

// isTextual reports whether a media type is text that mimetype may report
// as plain text.
func isTextual(mt string) bool {
	typ, sub, _ := strings.Cut(mt, "/")
	if typ == "text" || strings.HasSuffix(sub, "+json") || strings.HasSuffix(sub, "+xml") {
		return true
	}
	switch mt {
	case "application/json", "application/xml", "application/javascript",
		"application/x-ndjson", "application/yaml", "application/x-yaml":
		return true
	}
	return false
}
