//go:build integration

package integration_test

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// The form of the framework tests, as a browser (and a few other clients)
// would send it: an array file input "docs[]" with two files, a plain file
// input, repeated plain fields with and without brackets, a UTF-8 field name
// and value, a file name in RFC 5987 ISO-8859-1 (filename*), a field name in
// RFC 2047 (as .NET sends it) and a value in a declared charset.
func frameworkForm() (io.Reader, string) {
	return rawForm(
		rawField("title", "Café ☕"),
		rawField("名前", "値"),
		"Content-Disposition: form-data; name=\"docs[]\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nalpha",
		rawField("tag", "a"),
		rawField("tag", "b"),
		"Content-Disposition: form-data; name=\"docs[]\"; filename=\"b.txt\"\r\nContent-Type: text/plain\r\n\r\nbravo!",
		rawField("tags[]", "x"),
		rawField("tags[]", "y"),
		"Content-Disposition: form-data; name=\"avatar\"; filename=\"photo.txt\"\r\nContent-Type: text/plain\r\n\r\nsmile",
		"Content-Disposition: form-data; name=\"cv\"; filename*=ISO-8859-1''r%E9sum%E9.txt\r\nContent-Type: text/plain\r\n\r\ncv",
		"Content-Disposition: form-data; name=\"=?utf-8?B?cHLDqW5vbQ==?=\"\r\n\r\nJosé",
		"Content-Disposition: form-data; name=\"city\"\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nZ\xfcrich",
	)
}

// check is one value a framework must have parsed: the path of keys into
// its JSON answer and the value ("prefix:" checks a prefix, with the test's
// key prefix appended).
type check struct {
	path []string
	want string
}

// frameworkChecks says how each framework parses the rewritten form.
var frameworkChecks = map[app][]check{
	// $_POST: docs[0][key] nests, "." becomes "_", a repeated name keeps
	// the last value, tags[] is a list.
	appPHP: {
		{[]string{"post", "title"}, "Café ☕"},
		{[]string{"post", "名前"}, "値"},
		{[]string{"post", "docs", "0", "name"}, "a.txt"},
		{[]string{"post", "docs", "0", "size"}, "5"},
		{[]string{"post", "docs", "0", "key"}, "prefix:"},
		{[]string{"post", "docs", "1", "name"}, "b.txt"},
		{[]string{"post", "docs", "1", "size"}, "6"},
		{[]string{"post", "tag"}, "b"},
		{[]string{"post", "tags", "0"}, "x"},
		{[]string{"post", "tags", "1"}, "y"},
		{[]string{"post", "avatar_name"}, "photo.txt"},
		{[]string{"post", "avatar_key"}, "prefix:"},
		{[]string{"post", "cv_name"}, "résumé.txt"},
		{[]string{"post", "prénom"}, "José"},
		{[]string{"post", "city"}, "Zürich"},
	},
	// Rack (Rails params): docs[0][key] is the hash {"0" => {...}}, the
	// shape of nested attributes; "." is kept.
	appRack: {
		{[]string{"params", "title"}, "Café ☕"},
		{[]string{"params", "名前"}, "値"},
		{[]string{"params", "docs", "0", "name"}, "a.txt"},
		{[]string{"params", "docs", "0", "key"}, "prefix:"},
		{[]string{"params", "docs", "1", "name"}, "b.txt"},
		{[]string{"params", "docs", "1", "size"}, "6"},
		{[]string{"params", "tag"}, "b"},
		{[]string{"params", "tags", "0"}, "x"},
		{[]string{"params", "tags", "1"}, "y"},
		{[]string{"params", "avatar.name"}, "photo.txt"},
		{[]string{"params", "avatar.key"}, "prefix:"},
		{[]string{"params", "cv.name"}, "résumé.txt"},
		{[]string{"params", "prénom"}, "José"},
		{[]string{"params", "city"}, "Zürich"},
	},
	// request.form: flat names, every value of a repeated name.
	appWerkzeug: {
		{[]string{"form", "title", "0"}, "Café ☕"},
		{[]string{"form", "名前", "0"}, "値"},
		{[]string{"form", "docs[0][name]", "0"}, "a.txt"},
		{[]string{"form", "docs[0][key]", "0"}, "prefix:"},
		{[]string{"form", "docs[1][name]", "0"}, "b.txt"},
		{[]string{"form", "tag", "0"}, "a"},
		{[]string{"form", "tag", "1"}, "b"},
		{[]string{"form", "tags[]", "1"}, "y"},
		{[]string{"form", "avatar.name", "0"}, "photo.txt"},
		{[]string{"form", "avatar.key", "0"}, "prefix:"},
		{[]string{"form", "cv.name", "0"}, "résumé.txt"},
		{[]string{"form", "prénom", "0"}, "José"},
		{[]string{"form", "city", "0"}, "Zürich"},
	},
	// multer: docs[0][key] is an array of objects, a repeated name an
	// array.
	appExpress: {
		{[]string{"body", "title"}, "Café ☕"},
		{[]string{"body", "名前"}, "値"},
		{[]string{"body", "docs", "0", "name"}, "a.txt"},
		{[]string{"body", "docs", "0", "key"}, "prefix:"},
		{[]string{"body", "docs", "1", "name"}, "b.txt"},
		{[]string{"body", "docs", "1", "size"}, "6"},
		{[]string{"body", "tag", "0"}, "a"},
		{[]string{"body", "tag", "1"}, "b"},
		{[]string{"body", "tags", "1"}, "y"},
		{[]string{"body", "avatar.name"}, "photo.txt"},
		{[]string{"body", "avatar.key"}, "prefix:"},
		{[]string{"body", "cv.name"}, "résumé.txt"},
		{[]string{"body", "prénom"}, "José"},
		{[]string{"body", "city"}, "Zürich"},
	},
}

// noFiles is where each framework lists the file parts it got: none.
var noFiles = map[app][]string{
	appPHP: {"files"}, appWerkzeug: {"files"}, appExpress: {"files"},
}

// dig follows path through decoded JSON: object keys, or indexes into
// arrays.
func dig(v any, path ...string) (any, bool) {
	for _, k := range path {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// postTo posts a form to the gateway and decodes the app's JSON answer.
func postTo(t *testing.T, c *http.Client, url string, body io.Reader, ctype string, wantStatus int) map[string]any {
	t.Helper()
	resp, err := c.Do(mustRequest(t, url, body, ctype))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if resp.StatusCode != wantStatus || json.Unmarshal(raw, &v) != nil {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, wantStatus, raw)
	}
	return v
}

func mustRequest(t *testing.T, url string, body io.Reader, ctype string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	return req
}

// legacySite is a gateway in pass mode in front of app, with extra
// subdirectives.
func legacySite(prefix, app string, lines ...string) string {
	return fmt.Sprintf(`route /legacy/* {
		%s
		reverse_proxy %s
	}`, gatewayOpts{prefix: prefix, lines: append([]string{"output pass"}, lines...)}.block(), app)
}

// The same browser form, rewritten by the gateway, reaches PHP, Rack,
// Werkzeug and Express, and each framework's own parser reads it as a
// developer of that framework expects: the files of "docs[]" as an array
// (docs[0][key], docs[1][key]), repeated fields as that framework keeps
// them, non-ASCII names, values and file names in UTF-8 whatever encoding
// the client used. No file part reaches any app. When the app refuses the
// form (422), the stored files are deleted: nothing is left in S3.
func TestPassModeFormInEveryFramework(t *testing.T) {
	for _, a := range []app{appPHP, appRack, appWerkzeug, appExpress} {
		t.Run(string(a), func(t *testing.T) {
			addr := startApp(t, a)
			prefix := testPrefix(t)
			gw := startGateway(t, legacySite(prefix, addr))

			body, ctype := frameworkForm()
			resp, err := gw.Client.Do(mustRequest(t, gw.URL+"/legacy/submit", body, ctype))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var v map[string]any
			if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &v) != nil {
				t.Fatalf("status %d: %s", resp.StatusCode, raw)
			}
			for _, c := range frameworkChecks[a] {
				got, ok := dig(v, c.path...)
				s, isString := got.(string)
				switch want, isPrefix := strings.CutPrefix(c.want, "prefix:"); {
				case !ok || !isString:
					t.Errorf("%s: %q missing or not a string (%v)", a, c.path, got)
				case isPrefix && !strings.HasPrefix(s, prefix+want):
					t.Errorf("%s: %q = %q, want a key under %s", a, c.path, s, prefix)
				case !isPrefix && s != c.want:
					t.Errorf("%s: %q = %q, want %q", a, c.path, s, c.want)
				}
			}
			if p, ok := noFiles[a]; ok {
				if files, _ := dig(v, p...); fmt.Sprint(files) != "[]" {
					t.Errorf("%s got file parts: %v", a, files)
				}
			}
			if t.Failed() {
				t.Logf("%s parsed: %s", a, raw)
			}
			assertNothingStoredBesides(t, prefix, 4)

			t.Run("rolled back when the app refuses", func(t *testing.T) {
				prefix := testPrefix(t)
				gw := startGateway(t, legacySite(prefix, addr))
				body, ctype := frameworkForm()
				resp, err := gw.Client.Do(mustRequest(t, gw.URL+"/legacy/reject", body, ctype))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnprocessableEntity {
					t.Errorf("status %d, want the app's 422", resp.StatusCode)
				}
				assertNothingLeft(t, prefix)
			})
		})
	}
}

// A client cannot add an entry of its own to an array of stored files:
// with files under "docs[]", a plain field docs[5][key] (or docs[][key],
// or any name under docs) is refused, sent before or after the files, and
// nothing stays in S3.
func TestPassModeArrayCannotBeExtended(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, legacySite(prefix, startApp(t, appPHP)))
	file := "Content-Disposition: form-data; name=\"docs[]\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nalpha"
	for _, forged := range []string{"docs[5][key]", "docs[][key]", "docs[0][key]", "docs", "docs[1]"} {
		for _, where := range []string{"before", "after"} {
			t.Run(forged+" "+where, func(t *testing.T) {
				parts := []string{rawField(forged, prefix+"victim.txt"), file, file}
				if where == "after" {
					parts = []string{file, rawField(forged, prefix+"victim.txt"), file}
				}
				body, ctype := rawForm(parts...)
				resp, err := gw.Client.Do(mustRequest(t, gw.URL+"/legacy/submit", body, ctype))
				if err != nil {
					t.Fatal(err)
				}
				expectError(t, resp, http.StatusBadRequest, "RESERVED_FIELD")
			})
		}
	}
	assertNothingLeft(t, prefix)
}

// pass_field_style nested names every file's fields avatar[key], so each
// framework reads the file as one nested value (PHP $_POST['avatar']['key'],
// Rack params["avatar"]["key"], multer req.body.avatar.key; Werkzeug keeps
// the flat name), and plain fields such as first_name and api_key (refused
// by the dotted default, which PHP reads as avatar_name…) reach the app. A
// client's avatar[key] is still refused, and nothing it sent stays in S3.
func TestPassModeNestedStyle(t *testing.T) {
	nested := map[app]func(attr string) []string{
		appPHP:      func(attr string) []string { return []string{"post", "avatar", attr} },
		appRack:     func(attr string) []string { return []string{"params", "avatar", attr} },
		appWerkzeug: func(attr string) []string { return []string{"form", "avatar[" + attr + "]", "0"} },
		appExpress:  func(attr string) []string { return []string{"body", "avatar", attr} },
	}
	plain := map[app]func(name string) []string{
		appPHP:      func(name string) []string { return []string{"post", name} },
		appRack:     func(name string) []string { return []string{"params", name} },
		appWerkzeug: func(name string) []string { return []string{"form", name, "0"} },
		appExpress:  func(name string) []string { return []string{"body", name} },
	}
	for _, a := range []app{appPHP, appRack, appWerkzeug, appExpress} {
		t.Run(string(a), func(t *testing.T) {
			prefix := testPrefix(t)
			gw := startGateway(t, legacySite(prefix, startApp(t, a), "pass_field_style nested"))

			body, ctype := rawForm(
				rawField("first_name", "Ada"),
				rawField("api_key", "k-123"),
				"Content-Disposition: form-data; name=\"avatar\"; filename=\"me.txt\"\r\nContent-Type: text/plain\r\n\r\nhello",
			)
			v := postTo(t, gw.Client, gw.URL+"/legacy/submit", body, ctype, http.StatusOK)
			for name, want := range map[string]string{"first_name": "Ada", "api_key": "k-123"} {
				if got, _ := dig(v, plain[a](name)...); got != want {
					t.Errorf("%s: %q = %v, want %q", a, plain[a](name), got, want)
				}
			}
			for attr, want := range map[string]string{"name": "me.txt", "size": "5"} {
				if got, _ := dig(v, nested[a](attr)...); got != want {
					t.Errorf("%s: %q = %v, want %q", a, nested[a](attr), got, want)
				}
			}
			if key, _ := dig(v, nested[a]("key")...); !strings.HasPrefix(fmt.Sprint(key), prefix) {
				t.Errorf("%s: %q = %v, want a key under %s", a, nested[a]("key"), key, prefix)
			}

			for _, forged := range []string{"avatar[key]", "avatar[0][key]"} {
				body, ctype := rawForm(
					"Content-Disposition: form-data; name=\"avatar\"; filename=\"me.txt\"\r\nContent-Type: text/plain\r\n\r\nhello",
					rawField(forged, prefix+"victim.txt"),
				)
				resp, err := gw.Client.Do(mustRequest(t, gw.URL+"/legacy/submit", body, ctype))
				if err != nil {
					t.Fatal(err)
				}
				expectError(t, resp, http.StatusBadRequest, "RESERVED_FIELD")
			}
			assertNothingStoredBesides(t, prefix, 1)
		})
	}
}

// pass_form_fields forwards only the plain fields it selects, as nginx's
// upload_pass_form_field does; a field that is not forwarded cannot pose
// as the gateway's, so it is dropped, not refused. MD5 and CRC32 fields,
// when configured, hold the digests of the stored file, and pass fields
// can number the files of an array with {upload.index}.
func TestPassModeSelectedFieldsAndDigests(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, legacySite(prefix, startApp(t, appExpress),
		`pass_form_fields ^title$ ^tags\[`,
		"pass_field {upload.field_base}[{upload.index}][path] {upload.key}",
		"pass_field {upload.field_base}[{upload.index}][md5] {upload.md5}",
		"pass_field {upload.field_base}[{upload.index}][crc32] {upload.crc32}",
	))

	contents := []string{"first file", "second, longer file"}
	body, ctype := rawForm(
		rawField("title", "keep me"),
		rawField("secret", "drop me"),
		rawField("avatar_key", "dropped, not refused"),
		"Content-Disposition: form-data; name=\"files[]\"; filename=\"1.txt\"\r\nContent-Type: text/plain\r\n\r\n"+contents[0],
		rawField("tags[]", "t"),
		"Content-Disposition: form-data; name=\"files[]\"; filename=\"2.txt\"\r\nContent-Type: text/plain\r\n\r\n"+contents[1],
	)
	v := postTo(t, gw.Client, gw.URL+"/legacy/submit", body, ctype, http.StatusOK)
	b := v["body"].(map[string]any)
	if b["title"] != "keep me" || fmt.Sprint(b["tags"]) != "[t]" {
		t.Errorf("selected fields: %v", b)
	}
	for _, dropped := range []string{"secret", "avatar_key"} {
		if _, ok := b[dropped]; ok {
			t.Errorf("%s was forwarded: %v", dropped, b)
		}
	}
	for i, c := range contents {
		sum := md5.Sum([]byte(c))
		want := map[string]string{
			"md5":   hex.EncodeToString(sum[:]),
			"crc32": fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(c))),
		}
		for attr, w := range want {
			if got, _ := dig(b, "files", strconv.Itoa(i), attr); got != w {
				t.Errorf("files[%d][%s] = %v, want %s", i, attr, got, w)
			}
		}
		if got, _ := dig(b, "files", strconv.Itoa(i), "path"); !strings.HasPrefix(fmt.Sprint(got), prefix) {
			t.Errorf("files[%d][path] = %v, want a key under %s", i, got, prefix)
		}
	}
	assertNothingStoredBesides(t, prefix, 2)
}

// non_multipart decides what a matched route does with any other body:
// store it (the default), pass it to the app untouched (a urlencoded form
// on the same route), or refuse it with 415. Passed and refused bodies
// store nothing.
func TestPassModeNonMultipart(t *testing.T) {
	addr := startApp(t, appPHP)
	urlencoded := func() (io.Reader, string) {
		return strings.NewReader("title=Caf%C3%A9&tags%5B%5D=a&tags%5B%5D=b"), "application/x-www-form-urlencoded"
	}

	t.Run("pass", func(t *testing.T) {
		prefix := testPrefix(t)
		gw := startGateway(t, legacySite(prefix, addr, "non_multipart pass"))
		body, ctype := urlencoded()
		resp, err := gw.Client.Do(mustRequest(t, gw.URL+"/legacy/submit", body, ctype))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var v map[string]any
		if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &v) != nil {
			t.Fatalf("status %d: %s", resp.StatusCode, raw)
		}
		if got, _ := dig(v, "post", "title"); got != "Café" {
			t.Errorf("$_POST = %s", raw)
		}
		if got, _ := dig(v, "post", "tags", "1"); got != "b" {
			t.Errorf("$_POST = %s", raw)
		}
		assertNothingLeft(t, prefix)
	})
	t.Run("reject", func(t *testing.T) {
		prefix := testPrefix(t)
		gw := startGateway(t, legacySite(prefix, addr, "non_multipart reject"))
		body, ctype := urlencoded()
		resp, err := gw.Client.Do(mustRequest(t, gw.URL+"/legacy/submit", body, ctype))
		if err != nil {
			t.Fatal(err)
		}
		expectError(t, resp, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE")
		assertNothingLeft(t, prefix)
	})
	t.Run("store by default", func(t *testing.T) {
		prefix := testPrefix(t)
		gw := startGateway(t, legacySite(prefix, addr))
		body, ctype := urlencoded()
		resp, err := gw.Client.Do(mustRequest(t, gw.URL+"/legacy/submit", body, ctype))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status %d", resp.StatusCode)
		}
		assertNothingStoredBesides(t, prefix, 1)
	})
}
