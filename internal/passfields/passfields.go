// Package passfields names the fields that replace a file part in the form
// the gateway passes on to an application (pass mode), so that the
// application's own form parser — PHP's $_POST, Rack's params, Werkzeug's
// request.form, Express's multer or busboy — reads them as the structure a
// developer expects, and so that a client cannot send a field that reads as
// one of them.
//
// # Names
//
// [Defaults] are the fields written when none are configured. A pass-field
// name template of the form "{upload.field}.<attr>" (the
// defaults: "{upload.field}.name", ".key", ".size", …) is an attribute of
// the file, and its name depends on the file's field name and the style:
//
//	field        dotted (default)      nested
//	avatar       avatar.key            avatar[key]
//	docs[]       docs[0][key] …        docs[0][key] …
//	user[photo]  user[photo][key]      user[photo][key]
//
// A field name with brackets always gets the nested form, because "docs[].key"
// means nothing useful to PHP or Rack (PHP drops ".key" and appends every
// value to one flat list). The first "[]" of a name becomes the file's index
// among the files sent under that name ([Counter]), so the files of a
// multiple file input "docs[]" become $_POST['docs'][0], [1], … in PHP, and
// the hash {"0" => …, "1" => …} in Rack, the shape of Rails nested
// attributes. Any other template is used as written; "{upload.index}" and
// "{upload.field_base}" (the name before its first "[]") let it build the
// same shapes, or nginx's "tame arrays" ("{upload.field_base}_key[]").
//
// # Reserved names
//
// The application trusts these fields, so a client's plain field that some
// parser reads as one of them is refused. [Reserve] adds what the templates
// reserve before any file arrives: the fixed ending of a template
// (".key"; PHP reads "api.key" as "api_key", so "api_key" too), and the
// fixed base of a template such as "uploads[{upload.index}][key]". Nested
// names reserve nothing in advance: [ReserveWritten] reserves, when a file
// is stored, the subtree its fields are written under ("docs" for "docs[]",
// so a client cannot add "docs[7][key]"; "avatar" for "avatar" in the nested
// style). In the nested style, then, fields such as "first_name" and
// "api_key" are accepted, which the dotted style refuses.
//
// # Digests
//
// [Digests] computes the MD5 and CRC32 of a file as it streams, and only
// those the templates use ("{upload.md5}", "{upload.crc32}").
package passfields

import (
	"strconv"
	"strings"

	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
)

// Defaults are the pass fields written for each file when none are
// configured: its original name, key, bucket, size, content type, SHA-256
// and ETag, as attributes of the file's field.
func Defaults() []formstream.Field {
	attrs := []struct{ suffix, value string }{
		{"name", "{upload.name}"},
		{"key", "{upload.key}"},
		{"bucket", "{upload.bucket}"},
		{"size", "{upload.size}"},
		{"content_type", "{upload.content_type}"},
		// Empty without hash sha256, but still written, so that the
		// application never gets a client's field of that name, and the
		// pass_signature over the default fields stays what it was.
		{"sha256", "{upload.sha256}"},
		{"etag", "{upload.etag}"},
	}
	fields := make([]formstream.Field, len(attrs))
	for i, a := range attrs {
		fields[i] = formstream.Field{Name: "{upload.field}." + a.suffix, Value: a.value}
	}
	return fields
}

// Styles of the names of attribute templates.
const (
	// StyleDotted names attributes "<field>.<attr>", or "<field>[<attr>]"
	// when the field name has brackets.
	StyleDotted = "dotted"
	// StyleNested names attributes "<field>[<attr>]" for every file.
	StyleNested = "nested"
)

// fieldPlaceholder and basePlaceholder are the placeholders of the file's
// field name and of its base.
const (
	fieldPlaceholder = "{upload.field}"
	basePlaceholder  = "{upload.field_base}"
)

// Attr returns attr when template is "{upload.field}.<attr>" and attr is
// fixed text without dots, brackets or placeholders.
func Attr(template string) (string, bool) {
	attr, ok := strings.CutPrefix(template, fieldPlaceholder+".")
	if !ok || attr == "" || strings.ContainsAny(attr, ".[]{}") {
		return "", false
	}
	return attr, true
}

// Name returns the name of attribute attr of the index-th file sent under
// field, in the given style.
func Name(style, field string, index int, attr string) string {
	if style != StyleNested && !strings.Contains(field, "[") {
		return field + "." + attr
	}
	return Indexed(field, index) + "[" + attr + "]"
}

// Indexed returns field with its first "[]" replaced by "[index]".
func Indexed(field string, index int) string {
	i := strings.Index(field, "[]")
	if i < 0 {
		return field
	}
	return field[:i] + "[" + strconv.Itoa(index) + "]" + field[i+2:]
}

// Base returns field up to its first "[]", or all of it: "docs" for
// "docs[]", "user[docs]" for "user[docs][]", "avatar" for "avatar".
func Base(field string) string {
	base, _, _ := strings.Cut(field, "[]")
	return base
}

// Counter numbers the files of each field name from 0. Its zero value is
// ready to use; it is not safe for concurrent use.
type Counter struct {
	next map[string]int
}

// Next returns the index of the next file sent under field.
func (c *Counter) Next(field string) int {
	if c.next == nil {
		c.next = map[string]int{}
	}
	i := c.next[field]
	c.next[field] = i + 1
	return i
}

// Reserve adds to r the names a client's plain field may not take before
// any file has arrived, for the given name templates (the pass fields' and
// the signature field's) in the given style. See the package documentation.
func Reserve(r *formstream.Reserved, style string, templates []string) {
	for _, t := range templates {
		if attr, ok := Attr(t); ok {
			if style != StyleNested {
				r.AddEnding("." + attr)
			}
			continue
		}
		first := strings.IndexByte(t, '{')
		last := strings.LastIndexByte(t, '}')
		if first < 0 || last < 0 {
			r.AddName(t)
			continue
		}
		if i := strings.IndexByte(t[:first], '['); i > 0 {
			r.AddName(t[:i]) // "uploads[{upload.index}][key]": the uploads subtree
		}
		suffix := t[last+1:]
		if nestsUnderField(t) || suffix == "" {
			continue // reserved per file, by ReserveWritten
		}
		r.AddEnding(suffix)
	}
}

// nestsUnderField reports whether a template's names are always nested
// under the file's field name: "{upload.field}[key]",
// "{upload.field_base}[{upload.index}][key]".
func nestsUnderField(t string) bool {
	for _, p := range []string{fieldPlaceholder, basePlaceholder} {
		if rest, ok := strings.CutPrefix(t, p); ok && strings.HasPrefix(rest, "[") {
			return true
		}
	}
	return false
}

// ReserveWritten adds to r the fields written for one file sent under
// field: each name, and the subtree of the field's base when a name is
// nested in it, so that a client cannot add a file of its own to the same
// array ("docs[7][key]").
func ReserveWritten(r *formstream.Reserved, field string, fields []formstream.Field) {
	base := Base(field)
	nested := false
	for _, f := range fields {
		r.AddName(f.Name)
		nested = nested || strings.HasPrefix(f.Name, base+"[")
	}
	if nested {
		r.AddName(base)
	}
}
