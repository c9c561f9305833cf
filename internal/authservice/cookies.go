package authservice

import (
	"cmp"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"time"
)

// DefaultSessionCookie is the session cookie's name when [Cookies.Name] is
// empty.
const DefaultSessionCookie = "ugw_session"

// Cookies are the browser session of the login API: sign-in and refresh
// set a session cookie holding the token (read by the token check like a
// bearer header) and a refresh cookie holding the refresh token, which
// only the refresh and sign-out routes receive; sign-out clears both.
// Every cookie is HttpOnly (page scripts cannot read it), Secure (sent
// over HTTPS only) and SameSite=Strict (never sent with requests other
// sites start).
type Cookies struct {
	// Name is the session cookie's name. Default [DefaultSessionCookie].
	// The refresh cookie is named after it: Name + "_refresh" (a
	// `__Host-` prefix, which demands Path=/, becomes `__Secure-`).
	Name string
	// RefreshMaxAge is the refresh cookie's lifetime: that of the refresh
	// tokens ([CognitoRefreshMaxAge] with Cognito). Zero: a cookie the
	// browser drops when it closes.
	RefreshMaxAge time.Duration
}

// CognitoRefreshMaxAge is the refresh cookie's lifetime with Cognito: the
// default refresh token validity of an app client. A cookie that outlives
// its token only makes the next refresh fail (and clear it).
const CognitoRefreshMaxAge = 30 * 24 * time.Hour

// SessionName returns the session cookie's name.
func (c *Cookies) SessionName() string { return cmp.Or(c.Name, DefaultSessionCookie) }

// RefreshName returns the refresh cookie's name.
func (c *Cookies) RefreshName() string {
	name := c.SessionName()
	if rest, ok := strings.CutPrefix(name, "__Host-"); ok {
		name = "__Secure-" + rest
	}
	return name + "_refresh"
}

// cookie returns a cookie with the attributes every cookie of the session
// has. maxAge < 0 deletes it; 0 makes it last until the browser closes.
func cookie(name, value, path string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     path,
		HttpOnly: true,
		Secure:   true,
		SameSite: http.SameSiteStrictMode,
	}
	switch {
	case maxAge < 0:
		c.MaxAge = -1 // Max-Age=0: delete now
	case maxAge > 0:
		c.MaxAge = max(1, int(maxAge/time.Second))
	}
	return c
}

// refreshPaths returns the paths the refresh cookie is set for: the routes
// that read it (refresh and sign-out), each its own cookie, so that no
// other request carries the refresh token.
func (s *Service) refreshPaths() []string {
	return slices.DeleteFunc([]string{s.cfg.RefreshPath, s.cfg.LogoutPath}, func(p string) bool { return p == "" })
}

// setCookies sets the session and refresh cookies for t (the session
// cookie lives as long as the token).
func (s *Service) setCookies(w http.ResponseWriter, token string, ttl time.Duration, username, refreshToken string) {
	c := s.cfg.Cookies
	http.SetCookie(w, cookie(c.SessionName(), token, "/", max(ttl, time.Second)))
	if refreshToken == "" {
		return
	}
	value := encodeRefresh(username, refreshToken)
	for _, p := range s.refreshPaths() {
		http.SetCookie(w, cookie(c.RefreshName(), value, p, c.RefreshMaxAge))
	}
}

// clearCookies deletes the session and refresh cookies.
func (s *Service) clearCookies(w http.ResponseWriter) {
	c := s.cfg.Cookies
	http.SetCookie(w, cookie(c.SessionName(), "", "/", -1))
	for _, p := range s.refreshPaths() {
		http.SetCookie(w, cookie(c.RefreshName(), "", p, -1))
	}
}

// hasCookies reports whether r carries the session or the refresh cookie.
func (s *Service) hasCookies(r *http.Request) bool {
	for _, name := range []string{s.cfg.Cookies.SessionName(), s.cfg.Cookies.RefreshName()} {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return true
		}
	}
	return false
}

// refreshCookie returns the user name and refresh token of r's refresh
// cookie; ok is false when r has none.
func (s *Service) refreshCookie(r *http.Request) (username, token string, ok bool) {
	c, err := r.Cookie(s.cfg.Cookies.RefreshName())
	if err != nil {
		return "", "", false
	}
	return decodeRefresh(c.Value)
}

// encodeRefresh makes the refresh cookie's value: the user name (Cognito
// needs it to refresh for an app client with a secret) in base64url, a
// dot, and the refresh token.
func encodeRefresh(username, token string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(username)) + "." + token
}

// decodeRefresh reads a value of encodeRefresh.
func decodeRefresh(v string) (username, token string, ok bool) {
	u, token, found := strings.Cut(v, ".")
	name, err := base64.RawURLEncoding.DecodeString(u)
	if !found || err != nil || token == "" {
		return "", "", false
	}
	return string(name), token, true
}
