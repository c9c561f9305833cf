// Package uploadpage serves the gateway's upload page: a small page with
// Uppy's Dashboard on which a person signs in, uploads files straight to
// S3 through the file API's Companion routes, and lists, downloads and
// deletes them. It is embedded in the binary.
//
// # Assets
//
// assets/ holds index.html, page.js and page.css: the build of the npm
// package web/upload-page by scripts/build-page (Uppy from npm bundled with
// esbuild). The build is committed so that `go build` needs no npm;
// `scripts/build-page --check` (run by scripts/test) rebuilds it and fails
// when the committed files are not the build of the committed sources.
//
// # Serving
//
// [Page] answers GET and HEAD for its index (the configured path, which
// ends in "/", and index.html under it) and for page.js and page.css next
// to it; [Page.Handles] tells which requests those are, so that a
// middleware passes every other request on. The index is rendered once
// with html/template: the configuration reaches the script as data
// attributes of <body>, escaped like any attribute value. The script and
// style sheet are linked with a version query (a hash of their content):
// asked for with the current version they are cached for a year
// (immutable), otherwise, like the index, revalidated every time (ETag,
// 304). Every answer carries a Content-Security-Policy that allows only
// the page's own origin, plus blob: and data: images (Uppy's previews and
// icons) and, for connections, the S3 origins the browser uploads to.
package uploadpage

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Config configures a [Page].
type Config struct {
	// Path is where the page is served: its index, with page.js and
	// page.css next to it. Default "/"; a trailing "/" is added.
	Path string
	// APIBase is the file API's base path, e.g. "/api": the page calls
	// <APIBase>/files/… and Uppy the Companion routes <APIBase>/s3/….
	APIBase string
	// AuthBase is the prefix of the login API's routes: the page calls
	// <AuthBase>/auth/login, /auth/session and /auth/logout. Default "".
	AuthBase string
	// Title is the page's title and heading. Default "Upload files".
	Title string
	// ConnectOrigins are the origins the browser may send requests to
	// besides the page's own, for the Content-Security-Policy's
	// connect-src: the S3 endpoint of the presigned URLs, e.g.
	// "https://bucket.s3.eu-west-1.amazonaws.com" or
	// "https://*.amazonaws.com". Without it uploads to S3 are blocked.
	ConnectOrigins []string
}

// Page serves the upload page. It is safe for concurrent use.
type Page struct {
	path   string // ends in "/"
	csp    string
	index  asset
	script asset
	style  asset
	ver    string // the version query of script and style
}

type asset struct {
	body  []byte
	ctype string
	etag  string
}

func newAsset(body []byte, ctype string) asset {
	sum := sha256.Sum256(body)
	return asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// New checks cfg, renders the index and returns the page.
func New(cfg Config) (*Page, error) {
	p := &Page{path: cmp.Or(cfg.Path, "/")}
	if !strings.HasSuffix(p.path, "/") {
		p.path += "/"
	}
	for name, v := range map[string]string{"path": p.path, "API base path": cfg.APIBase, "auth base path": cfg.AuthBase} {
		if v != "" && (!strings.HasPrefix(v, "/") || strings.ContainsAny(v, "?#\"'<> \t\r\n")) {
			return nil, fmt.Errorf("uploadpage: %s %q must be a path starting with /", name, v)
		}
	}
	connect := []string{"'self'"}
	for _, o := range cfg.ConnectOrigins {
		src, err := sourceOf(o)
		if err != nil {
			return nil, fmt.Errorf("uploadpage: connect origin %q: %v", o, err)
		}
		connect = append(connect, src)
	}
	p.csp = strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self' blob: data:",
		"media-src 'self' blob:",
		"connect-src " + strings.Join(connect, " "),
		"form-action 'self'",
		"base-uri 'none'",
		"frame-ancestors 'none'",
	}, "; ")

	js, err := assets.ReadFile("assets/page.js")
	if err != nil {
		return nil, fmt.Errorf("uploadpage: %v", err)
	}
	css, err := assets.ReadFile("assets/page.css")
	if err != nil {
		return nil, fmt.Errorf("uploadpage: %v", err)
	}
	p.script = newAsset(js, "text/javascript; charset=utf-8")
	p.style = newAsset(css, "text/css; charset=utf-8")
	sum := sha256.Sum256(append(append([]byte{}, js...), css...))
	p.ver = hex.EncodeToString(sum[:6])

	tmpl, err := template.ParseFS(assets, "assets/index.html")
	if err != nil {
		return nil, fmt.Errorf("uploadpage: parsing index.html: %v", err)
	}
	var buf bytes.Buffer
	err = tmpl.Execute(&buf, map[string]string{
		"Title":    cmp.Or(cfg.Title, "Upload files"),
		"APIBase":  strings.TrimRight(cfg.APIBase, "/"),
		"AuthBase": strings.TrimRight(cfg.AuthBase, "/"),
		"JS":       "page.js?v=" + p.ver,
		"CSS":      "page.css?v=" + p.ver,
	})
	if err != nil {
		return nil, fmt.Errorf("uploadpage: rendering index.html: %v", err)
	}
	p.index = newAsset(buf.Bytes(), "text/html; charset=utf-8")
	return p, nil
}

// sourceOf checks that o is an origin (scheme, host, optional port; the
// host may start with "*.") and returns it as a CSP source.
func sourceOf(o string) (string, error) {
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return "", err
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("want an http or https origin")
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "":
		return "", errors.New("want scheme://host[:port] only")
	}
	host := strings.TrimPrefix(u.Host, "*.")
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c)) {
			return "", fmt.Errorf("invalid character %q in host", c)
		}
	}
	return u.Scheme + "://" + u.Host, nil
}

// Handles reports whether r is for the page: GET or HEAD of its index,
// index.html, page.js or page.css, or of its path without the trailing
// slash (redirected).
func (p *Page) Handles(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	_, ok := p.lookup(r.URL.Path)
	return ok || p.path != "/" && r.URL.Path == strings.TrimSuffix(p.path, "/")
}

func (p *Page) lookup(path string) (*asset, bool) {
	rest, ok := strings.CutPrefix(path, p.path)
	if !ok {
		return nil, false
	}
	switch rest {
	case "", "index.html":
		return &p.index, true
	case "page.js":
		return &p.script, true
	case "page.css":
		return &p.style, true
	}
	return nil, false
}

// ServeHTTP answers a request [Page.Handles] accepts; anything else gets a
// 404.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	if !p.Handles(r) {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	a, ok := p.lookup(r.URL.Path)
	if !ok { // the path without its slash
		http.Redirect(w, r, p.path, http.StatusPermanentRedirect)
		return
	}
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	if a != &p.index && r.URL.Query().Get("v") == p.ver {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
