//go:build integration

package integration_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// passSecret keys the pass_signature of these tests.
const passSecret = "pass-signature-secret-for-the-integration-tests"

// phpApp starts PHP's built-in server with testdata/php/dump.php, which
// answers with what PHP's multipart parser made of the form (see startApp).
func phpApp(t *testing.T) string {
	t.Helper()
	return startApp(t, appPHP)
}

// phpView is what the PHP app saw.
type phpView struct {
	Post     map[string]any  `json:"post"`
	Files    json.RawMessage `json:"files"` // [] when empty (a PHP array)
	Verified map[string]bool `json:"verified"`
}

// rawForm builds a multipart body from raw parts ("headers\r\n\r\nbody"),
// so that a test can send headers no well-behaved client library would.
func rawForm(parts ...string) (*strings.Reader, string) {
	const boundary = "hostile-client-boundary"
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n" + p + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return strings.NewReader(b.String()), "multipart/form-data; boundary=" + boundary
}

func rawField(name, value string) string {
	return fmt.Sprintf("Content-Disposition: form-data; name=%q\r\n\r\n%s", name, value)
}

func rawPNG(t *testing.T, field string) string {
	return fmt.Sprintf("Content-Disposition: form-data; name=%q; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n%s",
		field, fileBytes(t, pngMagic, 5, 2000))
}

// passSite is a gateway in pass mode with signed fields, in front of app.
func passSite(prefix, app string) string {
	return fmt.Sprintf(`route /legacy/* {
		%s
		reverse_proxy %s
	}`, gatewayOpts{prefix: prefix, lines: []string{
		"output pass",
		"pass_signature {upload.field}.signature " + passSecret,
	}}.block(), app)
}

// A PHP application behind the gateway reads the stored file's fields from
// $_POST (PHP turns "avatar.key" into avatar_key) and verifies their
// signature with the README's snippet. A hostile client then tries every
// way to make PHP read one of its own fields as the gateway's: a name*
// parameter PHP ignores, and the names PHP (or Rack) rewrites into
// avatar_key. Each is refused with 400 before the app is called, and
// nothing stays in S3.
func TestPassModePHPAppCannotBeSentForgedFields(t *testing.T) {
	prefix := testPrefix(t)
	app := phpApp(t)
	gw := startGateway(t, passSite(prefix, app))

	post := func(t *testing.T, body io.Reader, ctype string) *http.Response {
		t.Helper()
		resp, err := gw.Client.Post(gw.URL+"/legacy/submit?files=avatar", ctype, body)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	t.Run("the app gets the gateway's fields, signed", func(t *testing.T) {
		body, ctype := rawForm(rawField("title", "holiday"), rawPNG(t, "avatar"), rawField("note", "x.y z"))
		resp := post(t, body, ctype)
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var v phpView
		if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &v) != nil {
			t.Fatalf("status %d: %s", resp.StatusCode, raw)
		}
		if key, _ := v.Post["avatar_key"].(string); !strings.HasPrefix(key, prefix) {
			t.Errorf("$_POST['avatar_key'] = %v, want a key under %s", v.Post["avatar_key"], prefix)
		}
		if v.Post["title"] != "holiday" || v.Post["note"] != "x.y z" || v.Post["avatar_name"] != "a.png" {
			t.Errorf("$_POST = %v", v.Post)
		}
		if string(v.Files) != "[]" {
			t.Errorf("$_FILES = %s, want no file bytes at the app", v.Files)
		}
		if !v.Verified["avatar"] {
			t.Errorf("the app could not verify avatar_signature: %v", v.Post)
		}
	})

	forged := []struct {
		name string
		part string
		code string
	}{
		{"name* that PHP ignores", "Content-Disposition: form-data; name=\"avatar.key\"; name*=UTF-8''title\r\n\r\nuploads/victim.png", "MALFORMED_FORM"},
		{"a name continuation", "Content-Disposition: form-data; name*0=\"avatar\"; name*1=\".key\"\r\n\r\nuploads/victim.png", "MALFORMED_FORM"},
		{"a name cut at NUL", "Content-Disposition: form-data; name=\"avatar.key\x00x\"\r\n\r\nuploads/victim.png", "MALFORMED_FORM"},
		{"avatar_key", rawField("avatar_key", "uploads/victim.png"), "RESERVED_FIELD"},
		{"avatar key", rawField("avatar key", "uploads/victim.png"), "RESERVED_FIELD"},
		{"avatar[key", rawField("avatar[key", "uploads/victim.png"), "RESERVED_FIELD"},
		{"a leading space", rawField(" avatar.key", "uploads/victim.png"), "RESERVED_FIELD"},
		{"[avatar.key] for Rack", rawField("[avatar.key]", "uploads/victim.png"), "RESERVED_FIELD"},
		{"the signature", rawField("avatar_signature", strings.Repeat("0", 64)), "RESERVED_FIELD"},
	}
	for _, f := range forged {
		for _, where := range []string{"after the file", "before the file", "without a file"} {
			t.Run(f.name+" "+where, func(t *testing.T) {
				var body io.Reader
				var ctype string
				switch where {
				case "after the file":
					body, ctype = rawForm(rawPNG(t, "avatar"), f.part)
				case "before the file":
					body, ctype = rawForm(f.part, rawPNG(t, "avatar"))
				default:
					body, ctype = rawForm(rawField("title", "x"), f.part)
				}
				expectError(t, post(t, body, ctype), http.StatusBadRequest, f.code)
			})
		}
	}
	assertNothingStoredBesides(t, prefix, 1)
}

// assertNothingStoredBesides checks that exactly n objects (the accepted
// uploads) and no multipart upload are left under prefix.
func assertNothingStoredBesides(t *testing.T, prefix string, n int) {
	t.Helper()
	var uploads, objects []string
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		uploads, objects, err = env.Leftovers(t.Context(), prefix)
		if err == nil && len(uploads) == 0 && len(objects) == n || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || len(uploads) != 0 || len(objects) != n {
		t.Errorf("under %s: %v, %d multipart uploads, objects %v; want %d objects", prefix, err, len(uploads), objects, n)
	}
}

// goPart is a part as a Go application reads it.
type goPart struct {
	header http.Header
	value  string
}

// A Go application reading the raw parts sees every plain field in one
// canonical form: only `Content-Disposition: form-data; name="…"`, the
// decoded value, nothing a parser could read two ways (a Content-Type that
// Rack takes for a file, a transfer encoding, extra parameters). The
// signature verifies with the README's Go snippet.
func TestPassModeGoAppSeesCanonicalParts(t *testing.T) {
	prefix := testPrefix(t)
	var mu sync.Mutex
	var got []goPart
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mr, err := r.MultipartReader()
		if err != nil {
			return // the harness's readiness probe
		}
		mu.Lock()
		defer mu.Unlock()
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				break
			}
			v, _ := io.ReadAll(p)
			got = append(got, goPart{http.Header(p.Header), string(v)})
		}
	}))
	t.Cleanup(app.Close)
	gw := startGateway(t, passSite(prefix, strings.TrimPrefix(app.URL, "http://")))

	body, ctype := rawForm(
		"Content-Disposition: form-data;name=title; lang=en\r\nContent-Type: application/json\r\nX-Extra: 1\r\n\r\n{\"a\":1}",
		"Content-Disposition: form-data; name=\"q\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9",
		rawPNG(t, "avatar"),
	)
	resp, err := gw.Client.Post(gw.URL+"/legacy/submit", ctype, body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}

	mu.Lock()
	defer mu.Unlock()
	fields := map[string]string{}
	var order []string
	for _, p := range got {
		cd := p.header.Get("Content-Disposition")
		name, ok := strings.CutPrefix(cd, `form-data; name="`)
		name, ok2 := strings.CutSuffix(name, `"`)
		if len(p.header) != 1 || !ok || !ok2 {
			t.Errorf("part headers %q, want only Content-Disposition: form-data; name=\"…\"", p.header)
		}
		fields[name] = p.value
		order = append(order, name)
	}
	if fields["title"] != `{"a":1}` || fields["q"] != "café" {
		t.Errorf("plain fields = %q", fields)
	}
	values := []string{}
	for _, attr := range []string{"name", "key", "bucket", "size", "content_type", "sha256", "etag"} {
		values = append(values, fields["avatar."+attr])
	}
	if !verifyPassSignature([]byte(passSecret), "avatar", values, fields["avatar.signature"]) {
		t.Errorf("avatar.signature %q does not verify over %q (fields in order %q)", fields["avatar.signature"], values, order)
	}
}

// verifyPassSignature is the README's Go snippet.
func verifyPassSignature(secret []byte, field string, values []string, signature string) bool {
	mac := hmac.New(sha256.New, secret)
	for _, v := range append([]string{field}, values...) {
		fmt.Fprintf(mac, "%d:%s\n", len(v), v)
	}
	return hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(signature))
}
