// Package cors answers Cross-Origin Resource Sharing (CORS) requests for an
// API that browsers call from pages on other origins: it answers preflights
// itself and adds the response headers that let the page read the answers
// of actual requests.
//
// # Configuration
//
// A [Policy] is built from a [Config] by [New]: the allowed origins
// (exact "https://app.example.com", a wildcard subdomain
// "https://*.example.com", or "*" for any), the request headers a page may
// send (default Authorization and Content-Type; "*" admits any), the
// methods (default GET, POST, DELETE), the response headers a page may read
// besides the CORS-safelisted ones, how long a browser may cache a
// preflight, and whether requests may carry cookies (credentials).
//
// # Behaviour
//
// A preflight is an OPTIONS request with Origin and
// Access-Control-Request-Method. [Policy.Handle] answers it: 204 with
// Access-Control-Allow-Origin (the request's own origin), -Allow-Methods,
// -Allow-Headers, -Max-Age and, with credentials, -Allow-Credentials:
// true; or, when the origin, the method or a requested header is not
// allowed, 403 with a JSON error envelope (package envelope) and no CORS
// header, so the browser refuses the actual request.
//
// Any other request passes on to the API. When it carries an allowed
// Origin, the answer gets Access-Control-Allow-Origin (again the exact
// origin, never "*", so credentials work and caches key on Vary),
// -Expose-Headers and, with credentials, -Allow-Credentials. A request
// from a disallowed origin is served without CORS headers: the browser
// then keeps the answer from the page. Every answer carries Vary: Origin,
// since it depends on the origin.
//
// # Considerations
//
// CORS is enforced by browsers, not by the server: it keeps other pages
// from reading the API's answers, it does not authenticate anyone and it
// does not stop a request from being sent (non-browser clients ignore
// it). Requests authenticated by cookies also need a CSRF check of their
// origin; Bearer tokens, which a page must attach itself, do not.
package cors

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
)

// Defaults for zero Config fields.
var (
	DefaultHeaders = []string{"Authorization", "Content-Type"}
	DefaultMethods = []string{http.MethodGet, http.MethodPost, http.MethodDelete}
)

// ErrorCode is the code of the JSON error of a refused preflight.
const ErrorCode = "CORS_NOT_ALLOWED"

// Config configures a [Policy]. Zero values mean the defaults.
type Config struct {
	// Origins allowed: "scheme://host[:port]", "scheme://*.domain" for
	// any subdomain of domain, or "*" for any origin (not with
	// Credentials). Required.
	Origins []string
	// Headers a request may carry (Access-Control-Allow-Headers),
	// compared case-insensitively; "*" admits any. Default
	// Authorization, Content-Type.
	Headers []string
	// Methods a request may use. Default GET, POST, DELETE.
	Methods []string
	// ExposeHeaders the page may read in answers, besides the
	// CORS-safelisted ones (Access-Control-Expose-Headers). Default none.
	ExposeHeaders []string
	// MaxAge is how long a browser may cache a preflight's answer; 0 sends
	// no Access-Control-Max-Age (browsers then use 5 seconds).
	MaxAge time.Duration
	// Credentials lets requests carry cookies
	// (Access-Control-Allow-Credentials: true).
	Credentials bool
}

// Policy applies a Config. It is safe for concurrent use.
type Policy struct {
	exact      map[string]bool
	suffixes   []origin // wildcard subdomains: scheme and ".domain[:port]"
	anyOrigin  bool
	anyHeader  bool
	headers    map[string]bool // lowercase
	methods    []string
	allowHdrs  string
	allowMeths string
	expose     string
	maxAge     string
	creds      bool
}

type origin struct{ scheme, suffix string }

// New checks cfg and returns its policy.
func New(cfg Config) (*Policy, error) {
	if len(cfg.Origins) == 0 {
		return nil, errors.New("cors: at least one origin is required")
	}
	if cfg.MaxAge < 0 {
		return nil, errors.New("cors: max age may not be negative")
	}
	p := &Policy{exact: map[string]bool{}, headers: map[string]bool{}, creds: cfg.Credentials}
	for _, o := range cfg.Origins {
		if o == "*" {
			if cfg.Credentials {
				// Any site could then read what a signed-in user's
				// cookie gets it.
				return nil, errors.New("cors: origin * with credentials would let every site read the answers to a signed-in user; list the origins")
			}
			p.anyOrigin = true
			continue
		}
		norm, err := parseOrigin(o)
		if err != nil {
			return nil, err
		}
		if scheme, host, ok := strings.Cut(norm, "://*."); ok {
			p.suffixes = append(p.suffixes, origin{scheme: scheme, suffix: "." + host})
			continue
		}
		p.exact[norm] = true
	}
	headers := cfg.Headers
	if len(headers) == 0 {
		headers = DefaultHeaders
	}
	var allow []string // in the order configured, without duplicates or "*"
	for _, h := range headers {
		if h == "*" {
			p.anyHeader = true
			continue
		}
		if !validToken(h) {
			return nil, fmt.Errorf("cors: header %q is not a header name", h)
		}
		if l := strings.ToLower(h); !p.headers[l] {
			p.headers[l] = true
			allow = append(allow, h)
		}
	}
	p.methods = cfg.Methods
	if len(p.methods) == 0 {
		p.methods = DefaultMethods
	}
	for _, m := range p.methods {
		if !validToken(m) {
			return nil, fmt.Errorf("cors: method %q is not a method name", m)
		}
	}
	for _, h := range cfg.ExposeHeaders {
		if !validToken(h) {
			return nil, fmt.Errorf("cors: expose header %q is not a header name", h)
		}
	}
	p.allowMeths = strings.Join(p.methods, ", ")
	p.allowHdrs = strings.Join(allow, ", ")
	p.expose = strings.Join(cfg.ExposeHeaders, ", ")
	if cfg.MaxAge > 0 {
		p.maxAge = strconv.FormatInt(int64(cfg.MaxAge/time.Second), 10)
	}
	return p, nil
}

// parseOrigin checks an origin pattern and returns it lowercase.
func parseOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("cors: origin %q: want scheme://host[:port] (http or https), scheme://*.domain or *", o)
	}
	host := strings.ToLower(u.Host)
	if strings.Contains(strings.TrimPrefix(host, "*."), "*") {
		return "", fmt.Errorf("cors: origin %q: a wildcard must be the first label, as in https://*.example.com", o)
	}
	return u.Scheme + "://" + host, nil
}

// validToken reports whether s is an HTTP token (a header or method name).
func validToken(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(c rune) bool {
		return c <= ' ' || c >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c)
	})
}

// Allowed reports whether the policy allows the origin (the value of an
// Origin header).
func (p *Policy) Allowed(o string) bool {
	if o == "" || o == "null" {
		return false
	}
	if p.anyOrigin {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return false
	}
	norm := strings.ToLower(u.Scheme + "://" + u.Host)
	if p.exact[norm] {
		return true
	}
	host := strings.ToLower(u.Host)
	for _, s := range p.suffixes {
		if u.Scheme == s.scheme && strings.HasSuffix(host, s.suffix) && len(host) > len(s.suffix) {
			return true
		}
	}
	return false
}

// IsPreflight reports whether r is a CORS preflight: OPTIONS with Origin
// and Access-Control-Request-Method.
func IsPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

// Handle applies the policy to r. It answers a preflight itself (204, or
// 403 when refused) and returns true; for any other request it sets the
// CORS headers of the answer on w, when the origin is allowed, and
// returns false: the caller serves the request.
func (p *Policy) Handle(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Add("Vary", "Origin")
	o := r.Header.Get("Origin")
	if !IsPreflight(r) {
		if o != "" && p.Allowed(o) {
			h.Set("Access-Control-Allow-Origin", o)
			if p.creds {
				h.Set("Access-Control-Allow-Credentials", "true")
			}
			if p.expose != "" {
				h.Set("Access-Control-Expose-Headers", p.expose)
			}
		}
		return false
	}
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	if reason := p.refusal(r); reason != "" {
		_ = envelope.WriteError(w, http.StatusForbidden, ErrorCode, reason)
		return true
	}
	h.Set("Access-Control-Allow-Origin", o)
	h.Set("Access-Control-Allow-Methods", p.allowMeths)
	if p.anyHeader {
		// "*" is no wildcard for requests with credentials: name what
		// was asked for.
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
	} else if p.allowHdrs != "" {
		h.Set("Access-Control-Allow-Headers", p.allowHdrs)
	}
	if p.maxAge != "" {
		h.Set("Access-Control-Max-Age", p.maxAge)
	}
	if p.creds {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	w.WriteHeader(http.StatusNoContent)
	return true
}

// refusal says why a preflight is refused, or "".
func (p *Policy) refusal(r *http.Request) string {
	if !p.Allowed(r.Header.Get("Origin")) {
		return "origin not allowed"
	}
	m := r.Header.Get("Access-Control-Request-Method")
	if !slices.Contains(p.methods, m) {
		return fmt.Sprintf("method %s not allowed", m)
	}
	if p.anyHeader {
		return ""
	}
	for _, v := range r.Header.Values("Access-Control-Request-Headers") {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "" && !p.headers[name] {
				return fmt.Sprintf("header %s not allowed", name)
			}
		}
	}
	return ""
}
