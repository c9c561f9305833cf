package authservice

import (
	"errors"
	"net/http"
	"time"

	"github.com/caddy-upload-gateway/upload-gateway/internal/cognito"
	"github.com/caddy-upload-gateway/upload-gateway/internal/envelope"
	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
)

// errNoSession is a cookie refresh without a refresh cookie.
var errNoSession = errors.New("not signed in")

// SessionUser is the data of a session route response: who is signed in.
type SessionUser struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Role  string `json:"role"`
}

// cookieRefresh is the data of a sign-in or refresh answered to a page:
// the tokens stay in the cookies, out of reach of page scripts.
type cookieRefresh struct {
	ExpiresIn int    `json:"expiresIn"`
	ExpiresAt string `json:"expiresAt"`
	User      User   `json:"user"`
}

// sessionStarted sets the cookies for the tokens of resp, when the service
// has cookies, and returns the answer's data: resp, or, with cookies and
// forPage, the same without the tokens, which stay in the cookies out of
// reach of page scripts.
func (s *Service) sessionStarted(w http.ResponseWriter, resp *Response, forPage bool) any {
	if s.cfg.Cookies == nil {
		return resp
	}
	s.setCookies(w, resp.Token, time.Duration(resp.ExpiresIn)*time.Second, resp.username, resp.RefreshToken)
	if forPage {
		return cookieRefresh{ExpiresIn: resp.ExpiresIn, ExpiresAt: resp.ExpiresAt, User: resp.User}
	}
	return resp
}

// fromCookie takes the refresh token of r's refresh cookie into req when
// the body named none, after checking that another site did not send r.
// It reports whether the request is in cookie mode: no refresh token in
// the body, and the service has cookies.
func (s *Service) fromCookie(r *http.Request, req *request) (bool, error) {
	if s.cfg.Cookies == nil || req.RefreshToken != "" {
		return false, nil
	}
	if s.hasCookies(r) && s.cfg.CheckOrigin != nil {
		if err := s.cfg.CheckOrigin(r); err != nil {
			return true, err
		}
	}
	if username, token, ok := s.refreshCookie(r); ok {
		req.username, req.RefreshToken = username, token
	}
	return true, nil
}

// refresh renews the tokens of the refresh token in the body or, with
// cookies and an empty body, in the refresh cookie. A refresh from the
// cookie answers without the tokens; one the provider refuses clears the
// cookies.
func (s *Service) refresh(w http.ResponseWriter, r *http.Request, req *request) (any, error) {
	cookieMode, err := s.fromCookie(r, req)
	switch {
	case err != nil:
		return nil, err
	case req.RefreshToken == "" && cookieMode:
		return nil, errNoSession
	case req.RefreshToken == "":
		return nil, badRequest("refreshToken is required")
	}
	resp, err := s.issue(r.Context(), true, req)
	if err != nil {
		if cookieMode && (errors.Is(err, localidp.ErrInvalidRefreshToken) || errors.Is(err, cognito.ErrInvalidCredentials)) {
			s.clearCookies(w)
		}
		return nil, err
	}
	return s.sessionStarted(w, resp, cookieMode), nil
}

// logout ends the session: it revokes the refresh token of the body or the
// refresh cookie when the provider can (the local one, or a Cognito that is
// a [CognitoRevoker]), and clears the cookies. A refresh token that is no
// longer valid needs no revoking.
func (s *Service) logout(w http.ResponseWriter, r *http.Request, req *request) (any, error) {
	if _, err := s.fromCookie(r, req); err != nil {
		return nil, err
	}
	if s.cfg.Cookies != nil {
		s.clearCookies(w)
	}
	if req.RefreshToken == "" {
		return map[string]bool{"signedOut": true}, nil
	}
	var err error
	if s.cfg.Local != nil {
		err = s.cfg.Local.Revoke(r.Context(), req.RefreshToken)
	} else if revoker, ok := s.cfg.Cognito.(CognitoRevoker); ok {
		err = revoker.Revoke(r.Context(), req.RefreshToken)
	}
	if err != nil && !errors.Is(err, localidp.ErrInvalidRefreshToken) && !errors.Is(err, cognito.ErrInvalidCredentials) {
		return nil, err
	}
	return map[string]bool{"signedOut": true}, nil
}

// session answers who is signed in, or 401 (502 when the identity
// provider's keys could not be read), and returns the status.
func (s *Service) session(w http.ResponseWriter, r *http.Request) int {
	p, err := s.cfg.Authenticate(r)
	if err != nil {
		return Refuse(w, err)
	}
	_ = envelope.WriteData(w, http.StatusOK, SessionUser{ID: p.ID, Email: p.Email, Role: string(p.Role)})
	return http.StatusOK
}
