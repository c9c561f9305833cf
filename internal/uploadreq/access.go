package uploadreq

import (
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/passfields"
	"github.com/caddy-upload-gateway/upload-gateway/internal/ratelimit"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
)

// defaultAllowedRoles may upload when Config.AllowedRoles is empty.
var defaultAllowedRoles = []string{string(roles.Admin), string(roles.Uploader)}

// Authorize lets the request upload: one without an identity (no
// {http.auth.user.id}) only with AllowAnonymous, one with an identity when
// its role ({http.auth.user.role}) is one of AllowedRoles.
func (q *Request) Authorize() error {
	if id, _ := q.ph.GetString("http.auth.user.id"); id == "" {
		if q.c.AllowAnonymous {
			return nil
		}
		return ErrUnauthenticated
	}
	allowed := q.c.AllowedRoles
	if len(allowed) == 0 {
		allowed = defaultAllowedRoles
	}
	role, _ := q.ph.GetString("http.auth.user.role")
	if role == "" || !slices.Contains(allowed, role) {
		return fmt.Errorf("%w: role %q may not upload", ErrForbidden, role)
	}
	return nil
}

// Client names the request's client for the per-client limits: the user,
// or, for an anonymous request, the client address ip (IPv6: its /64).
func (q *Request) Client(ip string) string {
	if id, _ := q.ph.GetString("http.auth.user.id"); id != "" {
		return "user:" + id
	}
	return "ip:" + ratelimit.ClientKey(ip)
}

// IsMultipart reports whether r carries a multipart/form-data body.
func IsMultipart(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "multipart/form-data"
}

// MinSignatureKey is the shortest pass signature key, in bytes.
const MinSignatureKey = 32

// Validate checks the settings of c that a handler's configuration sets;
// its messages name the handler's options.
func (c *Config) Validate() error {
	if c.Form.MaxFiles < 0 || c.Form.MaxFields < 0 || c.Form.MaxFieldBytes < 0 {
		return fmt.Errorf("limits must not be negative")
	}
	if c.MemoryWait < 0 || c.ReadTimeout < 0 {
		return fmt.Errorf("memory_wait and read_timeout must not be negative")
	}
	for _, code := range c.RollbackOn {
		if code < 1 || code > 599 || (code > 5 && code < 100) {
			return fmt.Errorf("rollback_on: invalid status %d", code)
		}
	}
	for _, r := range c.AllowedRoles {
		if _, err := roles.Parse(r); err != nil || r == "" {
			return fmt.Errorf("allowed_roles: unknown role %q", r)
		}
	}
	for _, f := range c.PassFields {
		if f.Name == "" {
			return fmt.Errorf("pass_fields: a field has no name")
		}
	}
	switch c.PassStyle {
	case "", passfields.StyleDotted, passfields.StyleNested:
	default:
		return fmt.Errorf("unknown pass_field_style %q (want dotted or nested)", c.PassStyle)
	}
	for _, expr := range c.PassFormFields {
		if _, err := regexp.Compile(expr); err != nil {
			return fmt.Errorf("pass_form_fields: %v", err)
		}
	}
	return nil
}

// Prepare completes c once it is valid: it checks the length of the
// signature key (here, not in Validate: only the key expanded from the
// environment at provisioning counts), builds the Allowlist of
// AllowedTypes, compiles PassFormFields and notes which digests the pass
// fields use.
func (c *Config) Prepare() error {
	if c.SignatureField != "" && len(c.SignatureKey) < MinSignatureKey {
		return fmt.Errorf("pass_signature: the secret is %d bytes, want at least %d", len(c.SignatureKey), MinSignatureKey)
	}
	allow, err := contenttype.NewAllowlist(c.AllowedTypes)
	if err != nil {
		return fmt.Errorf("parsing allowed_types: %v", err)
	}
	c.Allowlist = allow
	if len(c.PassFormFields) > 0 {
		re, err := regexp.Compile("(?:" + strings.Join(c.PassFormFields, ")|(?:") + ")")
		if err != nil {
			return fmt.Errorf("parsing pass_form_fields: %v", err)
		}
		c.passForm = re
	}
	templates := []string{c.SignatureField}
	for _, f := range c.PassFields {
		templates = append(templates, f.Name, f.Value)
	}
	c.passMD5, c.passCRC32 = passfields.Needed(templates)
	return nil
}
