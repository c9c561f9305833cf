// Package csrf refuses cross-site requests that ride on a browser's
// cookies. A browser sends a site's cookies with requests other sites make
// it send (form posts, fetch with credentials), so a request authenticated
// by a cookie proves nothing about which page sent it. Browsers do say:
// every cross-origin request and every non-GET/HEAD request carries an
// `Origin` header naming the page's origin (RFC 6454, Fetch), which a page
// cannot forge. [Policy.Check] lets a state-changing request through only
// when its `Origin` (or, lacking it, the origin of its `Referer`) is the
// request's own origin or one the operator allowed.
//
// # Considerations
//
// Only requests authenticated by a cookie need the check: a bearer token in
// the Authorization header is never sent by the browser on its own, so a
// request carrying one was made by code that holds the token. GET, HEAD and
// OPTIONS must not change state; they are not checked. A state-changing
// request without `Origin` and `Referer` is refused: every current browser
// sends `Origin` on them, and a client that sends neither is not a browser
// and can use a bearer token. `Origin: null` (sandboxed frames, file:
// pages, some redirects) is refused too.
//
// The request's own origin is the scheme and host the client saw. Behind a
// reverse proxy that terminates TLS or rewrites the host, that is what the
// proxy writes in `X-Forwarded-Proto` and `X-Forwarded-Host`; those headers
// are read only for requests [Policy.Forwarded] vouches for (in Caddy:
// requests from a peer in the server's `trusted_proxies`), since anyone
// else can send them.
package csrf

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Errors of [Policy.Check]; both wrap [ErrOrigin].
var (
	// ErrOrigin matches every refusal of [Policy.Check] (errors.Is).
	ErrOrigin = errors.New("csrf: the request's origin is not allowed")
	// ErrNoOrigin: the request has neither Origin nor Referer (or only
	// `Origin: null`).
	ErrNoOrigin = fmt.Errorf("%w: no Origin or Referer header", ErrOrigin)
	// ErrForeignOrigin: Origin (or Referer) names another origin.
	ErrForeignOrigin = fmt.Errorf("%w: a foreign Origin", ErrOrigin)
)

// Policy says which origins may send state-changing requests besides the
// request's own. Build it with [New]; it is safe for concurrent use.
type Policy struct {
	allowed map[string]bool
	// Forwarded reports whether r came through a trusted reverse proxy,
	// whose X-Forwarded-Proto and X-Forwarded-Host then give the origin
	// the client saw. Nil: never.
	Forwarded func(r *http.Request) bool
}

// New returns a policy that also allows the given origins
// (`https://app.example.com`, `http://localhost:3000`): a scheme and a host
// with an optional port, nothing else.
func New(allowed []string) (*Policy, error) {
	p := &Policy{allowed: map[string]bool{}}
	for _, o := range allowed {
		n, ok := Normalize(o)
		if !ok {
			return nil, fmt.Errorf("csrf: %q is not an origin (scheme://host[:port])", o)
		}
		p.allowed[n] = true
	}
	return p, nil
}

// Safe reports whether method is one that must not change state: GET,
// HEAD or OPTIONS.
func Safe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// Check returns nil when r may go on: its method is safe, or its Origin
// (else its Referer's origin) is r's own origin or an allowed one. Otherwise
// it returns [ErrNoOrigin] or [ErrForeignOrigin]. Call it only for requests
// authenticated by a cookie.
func (p *Policy) Check(r *http.Request) error {
	if Safe(r.Method) {
		return nil
	}
	origin := strings.TrimSpace(r.Header.Get("Origin"))
	if origin == "" {
		ref, err := url.Parse(strings.TrimSpace(r.Header.Get("Referer")))
		if err != nil || ref.Scheme == "" || ref.Host == "" {
			return ErrNoOrigin
		}
		origin = ref.Scheme + "://" + ref.Host
	}
	if origin == "null" {
		return ErrNoOrigin
	}
	n, ok := Normalize(origin)
	if !ok {
		return ErrForeignOrigin
	}
	if p.allowed[n] {
		return nil
	}
	forwarded := p.Forwarded != nil && p.Forwarded(r)
	if self, ok := Normalize(RequestOrigin(r, forwarded)); ok && n == self {
		return nil
	}
	return ErrForeignOrigin
}

// Allows reports whether origin is one of the allowed origins (not the
// request's own, which needs no CORS).
func (p *Policy) Allows(origin string) bool {
	n, ok := Normalize(strings.TrimSpace(origin))
	return ok && p.allowed[n]
}

// RequestOrigin returns the origin r was sent to, as the client saw it:
// https when r came over TLS, else http, and r's Host. With forwarded (r
// came through a trusted proxy), the first X-Forwarded-Proto and
// X-Forwarded-Host values, when present, replace them.
func RequestOrigin(r *http.Request, forwarded bool) string {
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if forwarded {
		if v := firstValue(r.Header.Get("X-Forwarded-Proto")); v != "" {
			scheme = v
		}
		if v := firstValue(r.Header.Get("X-Forwarded-Host")); v != "" {
			host = v
		}
	}
	return scheme + "://" + host
}

// firstValue returns the first item of a comma-separated header value:
// the one the proxy nearest the client wrote.
func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// Normalize returns origin in the form origins are compared in: lower
// case, without the scheme's default port. ok is false when origin is not
// an http(s) scheme and a host with an optional port and nothing else.
func Normalize(origin string) (string, bool) {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host := strings.ToLower(u.Host)
	if h, port, err := net.SplitHostPort(host); err == nil {
		if port == "" {
			return "", false
		}
		if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
			host = h
			if strings.Contains(h, ":") {
				host = "[" + h + "]"
			}
		}
	}
	return scheme + "://" + host, true
}
