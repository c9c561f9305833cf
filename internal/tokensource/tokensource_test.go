package tokensource

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func TestToken(t *testing.T) {
	tests := []struct {
		name      string
		src       Source
		url       string
		header    string
		cookie    *http.Cookie
		wantToken string
		wantFrom  string
		wantOK    bool
	}{
		{name: "header", url: "/", header: "Bearer abc", wantToken: "abc", wantFrom: FromHeader, wantOK: true},
		{name: "header scheme is case-insensitive", url: "/", header: "bearer  abc ", wantToken: "abc", wantFrom: FromHeader, wantOK: true},
		{name: "basic header is no token", url: "/", header: "Basic dXNlcjpwdw==", wantFrom: FromHeader},
		{name: "basic header is not overridden by a cookie", src: Source{Cookies: []string{"id"}}, url: "/", header: "Basic x",
			cookie: &http.Cookie{Name: "id", Value: "c"}, wantFrom: FromHeader},
		{name: "no source configured ignores cookie and query", url: "/?t=q", cookie: &http.Cookie{Name: "id", Value: "c"}},
		{name: "cookie", src: Source{Cookies: []string{"id"}}, url: "/", cookie: &http.Cookie{Name: "id", Value: "c"},
			wantToken: "c", wantFrom: FromCookie, wantOK: true},
		{name: "second cookie", src: Source{Cookies: []string{"session", "id"}}, url: "/", cookie: &http.Cookie{Name: "id", Value: "c"},
			wantToken: "c", wantFrom: FromCookie, wantOK: true},
		{name: "other cookie", src: Source{Cookies: []string{"id"}}, url: "/", cookie: &http.Cookie{Name: "session", Value: "c"}},
		{name: "empty cookie falls through to query", src: Source{Cookies: []string{"id"}, Query: "t"}, url: "/?t=q",
			cookie: &http.Cookie{Name: "id", Value: ""}, wantToken: "q", wantFrom: FromQuery, wantOK: true},
		{name: "header wins over cookie", src: Source{Cookies: []string{"id"}}, url: "/", header: "Bearer h",
			cookie: &http.Cookie{Name: "id", Value: "c"}, wantToken: "h", wantFrom: FromHeader, wantOK: true},
		{name: "cookie wins over query", src: Source{Cookies: []string{"id"}, Query: "t"}, url: "/?t=q",
			cookie: &http.Cookie{Name: "id", Value: "c"}, wantToken: "c", wantFrom: FromCookie, wantOK: true},
		{name: "query", src: Source{Query: "access_token"}, url: "/up?a=1&access_token=q", wantToken: "q", wantFrom: FromQuery, wantOK: true},
		{name: "query not configured", src: Source{Cookies: []string{"id"}}, url: "/up?access_token=q"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tt.url, nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			if tt.cookie != nil {
				r.AddCookie(tt.cookie)
			}
			token, from, ok := tt.src.Token(r)
			if token != tt.wantToken || from != tt.wantFrom || ok != tt.wantOK {
				t.Errorf("Token() = %q, %q, %v; want %q, %q, %v", token, from, ok, tt.wantToken, tt.wantFrom, tt.wantOK)
			}
		})
	}
}

func TestStrip(t *testing.T) {
	tests := []struct {
		name, src, url, want string
	}{
		{"removed", "t", "/up?a=1&t=secret&b=2", "/up?a=1&b=2"},
		{"only parameter", "t", "/up?t=secret", "/up"},
		{"absent", "t", "/up?a=1", "/up?a=1"},
		{"not configured", "", "/up?t=secret", "/up?t=secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tt.url, nil)
			Source{Query: tt.src}.Strip(r)
			if got := r.URL.RequestURI(); got != tt.want {
				t.Errorf("URL = %q, want %q", got, tt.want)
			}
			if r.RequestURI != tt.want {
				t.Errorf("RequestURI = %q, want %q", r.RequestURI, tt.want)
			}
		})
	}
}

func TestStripOwnedCookies(t *testing.T) {
	tests := []struct {
		name    string
		cookies []string // Cookie header lines
		want    []string
	}{
		{"both owned cookies among the app's", []string{"app=1; ugw_session=tok; ugw_session_refresh=r; theme=dark"}, []string{"app=1; theme=dark"}},
		{"only owned ones", []string{"ugw_session=tok"}, nil},
		{"none owned", []string{"app=1; theme=dark"}, []string{"app=1; theme=dark"}},
		{"several lines", []string{"app=1", "ugw_session_refresh=r; x=2"}, []string{"app=1; x=2"}},
		{"a cookie whose name only starts like one", []string{"ugw_sessionX=1"}, []string{"ugw_sessionX=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/up", nil)
			for _, c := range tt.cookies {
				r.Header.Add("Cookie", c)
			}
			Source{Cookies: []string{"ugw_session"}, Owned: []string{"ugw_session", "ugw_session_refresh"}}.Strip(r)
			if got := r.Header.Values("Cookie"); !slices.Equal(got, tt.want) {
				t.Errorf("Cookie = %q, want %q", got, tt.want)
			}
		})
	}
}
