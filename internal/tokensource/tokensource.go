// Package tokensource finds the token a request carries: in the
// `Authorization: Bearer` header (RFC 6750, always looked at first), in one
// of some named cookies, or in a named query parameter. A browser that posts a plain
// HTML form cannot set a header, but it sends its cookies, so a token kept
// in a cookie (an Amplify or Cognito hosted-UI id-token cookie, say)
// authenticates the form as a header would.
//
// # Considerations
//
// A cookie is sent with every request the browser makes to the site,
// including forms posted from other sites unless the cookie is
// `SameSite=Lax` or `Strict`: set one of those on the token cookie, or a
// third-party page can upload in the user's name (cross-site request
// forgery). [Source.Token] says where the token came from, so that the
// caller can check a cookie request's origin (package csrf). A token in a query parameter ends up in browser history,
// Referer headers and access logs; use it only where nothing else works
// (an upload URL handed to a plugin that cannot send headers or cookies).
// [Source.Strip] removes it from the request before it is passed on.
package tokensource

import (
	"net/http"
	"slices"
	"strings"
)

// Where a token was found.
const (
	FromHeader = "header"
	FromCookie = "cookie"
	FromQuery  = "query"
)

// Source says where tokens are looked for besides the Authorization header.
// The zero value looks only at the header.
type Source struct {
	// Cookies are the names of cookies that may hold the token, looked at
	// in order; none by default.
	Cookies []string
	// Query is the name of a query parameter holding the token; empty for
	// none.
	Query string
	// Owned are the names of cookies that belong to the gateway (its
	// session and refresh cookies), which [Source.Strip] removes. Cookies
	// that may belong to the application (Cookies) are left alone.
	Owned []string
}

// Token returns the request's token and where it was found: the bearer
// token of the Authorization header, else the first cookie holding one,
// else the query parameter. ok is false when none of them holds a token. A request whose
// Authorization header is not a bearer token is not looked at further: a
// client that sends credentials in the header means those.
func (s Source) Token(r *http.Request) (token, from string, ok bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		token, ok := Bearer(h)
		return token, FromHeader, ok
	}
	for _, name := range s.Cookies {
		if c, err := r.Cookie(name); err == nil {
			if t := strings.TrimSpace(c.Value); t != "" {
				return t, FromCookie, true
			}
		}
	}
	if s.Query != "" {
		if t := strings.TrimSpace(r.URL.Query().Get(s.Query)); t != "" {
			return t, FromQuery, true
		}
	}
	return "", "", false
}

// Strip removes the query parameter holding tokens from r's URL and the
// Owned cookies from its Cookie headers, so that the handlers after this
// one (and the application behind them) never see them.
func (s Source) Strip(r *http.Request) {
	s.stripCookies(r)
	if q := r.URL.Query(); s.Query != "" && q.Has(s.Query) {
		q.Del(s.Query)
		r.URL.RawQuery = q.Encode()
		r.RequestURI = r.URL.RequestURI()
	}
}

// stripCookies removes the Owned cookies from r's Cookie headers, keeping
// the others as they were sent.
func (s Source) stripCookies(r *http.Request) {
	if len(s.Owned) == 0 {
		return
	}
	var kept []string
	changed := false
	for _, line := range r.Header.Values("Cookie") {
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			name, _, _ := strings.Cut(part, "=")
			switch {
			case slices.Contains(s.Owned, name):
				changed = true
			case part != "":
				kept = append(kept, part)
			}
		}
	}
	if !changed {
		return
	}
	r.Header.Del("Cookie")
	if len(kept) > 0 {
		r.Header.Set("Cookie", strings.Join(kept, "; "))
	}
}

// Bearer extracts the token of an RFC 6750 `Authorization: Bearer` header
// value.
func Bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
