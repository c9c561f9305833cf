package gateway

import (
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strings"

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
		g.flow.PassForm = re
	}
	g.flow.PassMD5, g.flow.PassCRC32 = passfields.Needed(g.passTemplates())
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

// isMultipart reports whether r carries a multipart/form-data body.
func isMultipart(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "multipart/form-data"
}
