package gateway

import (
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strings"

	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
	"github.com/caddy-upload-gateway/upload-gateway/internal/passfields"
)

// What a matched route does with a body that is not multipart/form-data
// (non_multipart).
const (
	// NonMultipartStore stores the body as one object (the default).
	NonMultipartStore = "store"
	// NonMultipartPass hands the request to the next handler untouched;
	// nothing is stored.
	NonMultipartPass = "pass"
	// NonMultipartReject answers 415 UNSUPPORTED_MEDIA_TYPE.
	NonMultipartReject = "reject"
)

// provisionPassForm compiles pass_form_fields and notes which digests the
// pass fields use.
func (g *Gateway) provisionPassForm() error {
	if len(g.PassFormFields) > 0 {
		re, err := regexp.Compile("(?:" + strings.Join(g.PassFormFields, ")|(?:") + ")")
		if err != nil {
			return fmt.Errorf("parsing pass_form_fields: %v", err)
		}
		g.passForm = re
	}
	g.passMD5, g.passCRC32 = passfields.Needed(g.passTemplates())
	return nil
}

// validatePassForm checks the pass-mode options.
func (g *Gateway) validatePassForm() error {
	switch g.PassFieldStyle {
	case "", passfields.StyleDotted, passfields.StyleNested:
	default:
		return fmt.Errorf("unknown pass_field_style %q (want dotted or nested)", g.PassFieldStyle)
	}
	switch g.NonMultipart {
	case "", NonMultipartStore, NonMultipartPass, NonMultipartReject:
	default:
		return fmt.Errorf("unknown non_multipart %q (want store, pass or reject)", g.NonMultipart)
	}
	for _, expr := range g.PassFormFields {
		if _, err := regexp.Compile(expr); err != nil {
			return fmt.Errorf("pass_form_fields: %v", err)
		}
	}
	return nil
}

// passTemplates are the templates of the fields written for each file, names
// and values.
func (g *Gateway) passTemplates() []string {
	var ts []string
	for _, pf := range g.PassFields {
		ts = append(ts, pf.Name, pf.Value)
	}
	if g.PassSignature != nil {
		ts = append(ts, g.PassSignature.Field)
	}
	return ts
}

// passesField reports whether a plain field is forwarded in pass mode
// (pass_form_fields).
func (g *Gateway) passesField(name string) bool {
	return g.passForm == nil || g.passForm.MatchString(name)
}

// isMultipart reports whether r carries a multipart/form-data body.
func isMultipart(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "multipart/form-data"
}

// passFieldName expands the name template of a pass field for the file in
// field: "{upload.field}.<attr>" is named in pass_field_style (nested for
// a field name with brackets), anything else is expanded as written.
func (q *request) passFieldName(tmpl, field string, index int) string {
	if attr, ok := passfields.Attr(tmpl); ok {
		return stripControl(passfields.Name(q.g.PassFieldStyle, field, index, attr))
	}
	return stripControl(q.repl.ReplaceAll(tmpl, ""))
}

// reservedNames returns the set of names a client's plain field may not
// take in pass mode, as read by Go's parser, PHP's or Rack's (which turn
// "a.b" into "a_b", "[a]" into "a", …; see [formstream.Reserved] and
// [passfields.Reserve]). The fields written for each stored file are added
// to it as they are written. Each name is read once when added, so checking
// a field costs the same however many files the form holds.
func (g *Gateway) reservedNames() *formstream.Reserved {
	r := new(formstream.Reserved)
	templates := make([]string, 0, len(g.PassFields)+1)
	for _, pf := range g.PassFields {
		templates = append(templates, pf.Name)
	}
	if g.PassSignature != nil {
		templates = append(templates, g.PassSignature.Field)
	}
	passfields.Reserve(r, g.PassFieldStyle, templates)
	return r
}
