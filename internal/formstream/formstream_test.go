package formstream_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const bnd = "fOrMsTrEaM-b0undary"

// form frames parts (each "headers\r\n\r\nbody") with bnd, closing boundary
// and final CRLF included.
func form(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--" + bnd + "\r\n" + p + "\r\n")
	}
	b.WriteString("--" + bnd + "--\r\n")
	return b.String()
}

func field(name, value string) string {
	return `Content-Disposition: form-data; name="` + name + `"` + "\r\n\r\n" + value
}

func file(name, filename, body string) string {
	return `Content-Disposition: form-data; name="` + name + `"; filename="` + filename + `"` +
		"\r\nContent-Type: text/plain\r\n\r\n" + body
}

// recorder is a store that reads every file and records it as
// "index|field|filename|content type|body". It replaces each file by one
// field, "<field>.stored" = file name.
type recorder struct {
	calls []string
}

func (r *recorder) store(_ context.Context, f *formstream.File) ([]formstream.Field, error) {
	b, err := io.ReadAll(f.Body)
	if err != nil {
		return nil, err
	}
	r.calls = append(r.calls, fmt.Sprintf("%d|%s|%s|%s|%s", f.Index, f.Field, f.FileName, f.ContentType, b))
	return []formstream.Field{{Name: f.Field + ".stored", Value: f.FileName}}, nil
}

// fieldStrings renders fields as "name=value".
func fieldStrings(fields []formstream.Field) []string {
	var s []string
	for _, f := range fields {
		s = append(s, f.Name+"="+f.Value)
	}
	return s
}

// parts re-reads a rewritten form as "name=raw value" per part.
func parts(t *testing.T, form []byte, boundary string) []string {
	t.Helper()
	var s []string
	r := multipart.NewReader(bytes.NewReader(form), boundary)
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			return s
		}
		if err != nil {
			t.Fatalf("re-reading the rewritten form: %v\n%s", err, form)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("re-reading the rewritten form: %v\n%s", err, form)
		}
		s = append(s, p.FormName()+"="+string(b))
	}
}

func TestBoundary(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		want        string
		wantErr     error
	}{
		{"browser", "multipart/form-data; boundary=----WebKitFormBoundaryx8Yq1ZbT3sGkQ0pA", "----WebKitFormBoundaryx8Yq1ZbT3sGkQ0pA", nil},
		{"quoted with space and specials", `multipart/form-data; boundary="a b'()+_,-./:=?"`, "a b'()+_,-./:=?", nil},
		{"media type case and charset", "Multipart/Form-Data; charset=utf-8; BOUNDARY=xyz", "xyz", nil},
		{"70 characters", "multipart/form-data; boundary=" + strings.Repeat("a", 70), strings.Repeat("a", 70), nil},
		{"empty", "", "", formstream.ErrNotMultipart},
		{"urlencoded", "application/x-www-form-urlencoded", "", formstream.ErrNotMultipart},
		{"multipart/mixed", "multipart/mixed; boundary=xyz", "", formstream.ErrNotMultipart},
		{"json", "application/json; charset=utf-8", "", formstream.ErrNotMultipart},
		{"no boundary", "multipart/form-data", "", formstream.ErrMalformed},
		{"empty boundary", `multipart/form-data; boundary=""`, "", formstream.ErrMalformed},
		{"71 characters", "multipart/form-data; boundary=" + strings.Repeat("a", 71), "", formstream.ErrMalformed},
		{"trailing space", `multipart/form-data; boundary="ab "`, "", formstream.ErrMalformed},
		{"invalid character", `multipart/form-data; boundary="a@b"`, "", formstream.ErrMalformed},
		{"two boundaries", "multipart/form-data; boundary=a; boundary=b", "", formstream.ErrMalformed},
		{"bad parameters", "multipart/form-data; boundary", "", formstream.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := formstream.Boundary(tt.contentType)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Boundary(%q) error = %v, want %v", tt.contentType, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Boundary(%q) = %q, want %q", tt.contentType, got, tt.want)
			}
		})
	}
}

func TestRewrite(t *testing.T) {
	bigHeader := "Content-Disposition: form-data; name=\"a\"\r\nX-Big: " + strings.Repeat("x", 11<<20)
	tests := []struct {
		name      string
		body      string
		boundary  string // bnd if empty
		lim       formstream.Limits
		wantErr   error
		wantCalls []string // store calls, see recorder
		// Checked only on success:
		wantFields []string // Result.Fields
		wantOut    []string // the rewritten form, see parts
	}{
		{
			name:       "fields and files keep their order",
			body:       form(field("a", "1"), file("f", "x.txt", "hello"), field("b", "2"), file("g", "y.txt", "bye")),
			wantCalls:  []string{"0|f|x.txt|text/plain|hello", "1|g|y.txt|text/plain|bye"},
			wantFields: []string{"a=1", "b=2"},
			wantOut:    []string{"a=1", "f.stored=x.txt", "b=2", "g.stored=y.txt"},
		},
		{
			name:       "no parts",
			body:       "--" + bnd + "--\r\n",
			wantFields: nil,
			wantOut:    nil,
		},
		{
			name:       "field bytes kept as sent",
			body:       form(field("t", "line 1\r\nline 2\n\x00\xff --"+bnd+"x")),
			wantFields: []string{"t=line 1\r\nline 2\n\x00\xff --" + bnd + "x"},
			wantOut:    []string{"t=line 1\r\nline 2\n\x00\xff --" + bnd + "x"},
		},
		{
			name:       "file body containing a near boundary",
			body:       form(file("f", "b.bin", "a\r\n--"+bnd+"x\r\n-"+bnd)),
			wantCalls:  []string{"0|f|b.bin|text/plain|a\r\n--" + bnd + "x\r\n-" + bnd},
			wantFields: nil,
			wantOut:    []string{"f.stored=b.bin"},
		},
		{
			name:      "filename* is decoded",
			body:      form("Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''%E2%82%AC.txt\r\n\r\neuro"),
			wantCalls: []string{"0|f|€.txt||euro"},
			wantOut:   []string{"f.stored=€.txt"},
		},
		{
			name:      "filename* wins over filename",
			body:      form("Content-Disposition: form-data; name=\"f\"; filename=\"EUR.txt\"; filename*=utf-8'en'%E2%82%AC.txt\r\n\r\neuro"),
			wantCalls: []string{"0|f|€.txt||euro"},
			wantOut:   []string{"f.stored=€.txt"},
		},
		{
			name:      "filename* in ISO-8859-1",
			body:      form("Content-Disposition: form-data; name=\"f\"; filename*=ISO-8859-1''%A3%20r%E9sum%E9.txt\r\n\r\nx"),
			wantCalls: []string{"0|f|£ résumé.txt||x"},
			wantOut:   []string{"f.stored=£ résumé.txt"},
		},
		{
			name:      "filename* in windows-1252 wins over filename",
			body:      form("Content-Disposition: form-data; name=\"f\"; filename=\"EUR.txt\"; filename*=windows-1252''%80.txt\r\n\r\nx"),
			wantCalls: []string{"0|f|€.txt||x"},
			wantOut:   []string{"f.stored=€.txt"},
		},
		{
			name:      "filename* alone in Shift_JIS",
			body:      form("Content-Disposition: form-data; name=\"f\"; filename*=Shift_JIS''%93%FA%96%7B.txt\r\n\r\nx"),
			wantCalls: []string{"0|f|日本.txt||x"},
			wantOut:   []string{"f.stored=日本.txt"},
		},
		{
			name:      "RFC 2047 file name and field name (.NET)",
			body:      form("Content-Disposition: form-data; name=\"=?utf-8?B?w6l0w6k=?=\"; filename=\"=?utf-8?B?w6l0w6kudHh0?=\"\r\n\r\nx"),
			wantCalls: []string{"0|été|été.txt||x"},
			wantOut:   []string{"été.stored=été.txt"},
		},
		{
			name:       "RFC 2047 field name in ISO-8859-1",
			body:       form("Content-Disposition: form-data; name=\"=?ISO-8859-1?Q?pr=E9nom?=\"\r\n\r\nJos\xc3\xa9"),
			wantFields: []string{"prénom=José"},
			wantOut:    []string{"prénom=José"},
		},
		{
			name:      "file name that only looks encoded is kept",
			body:      form(file("f", "=?x-no-such?q?a?=", "x")),
			wantCalls: []string{"0|f|=?x-no-such?q?a?=|text/plain|x"},
			wantOut:   []string{"f.stored==?x-no-such?q?a?="},
		},
		{
			name:       "UTF-8 names and values as browsers send them",
			body:       form(field("名前", "値 ✓"), file("ファイル[]", "写真.png", "x")),
			wantCalls:  []string{"0|ファイル[]|写真.png|text/plain|x"},
			wantFields: []string{"名前=値 ✓"},
			wantOut:    []string{"名前=値 ✓", "ファイル[].stored=写真.png"},
		},
		{
			name:       "value in a declared charset is forwarded in UTF-8",
			body:       form("Content-Disposition: form-data; name=\"a\"\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nr\xe9sum\xe9", "Content-Disposition: form-data; name=\"b\"\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n\xe9"),
			wantFields: []string{"a=résumé", "b=\xe9"},
			wantOut:    []string{"a=résumé", "b=\xe9"},
		},
		{
			name:       "Pass drops fields from the rewritten form only",
			body:       form(field("keep", "1"), field("drop", "2"), file("f", "x.txt", "x"), field("keep2", "3")),
			lim:        formstream.Limits{Pass: func(name string) bool { return strings.HasPrefix(name, "keep") }},
			wantCalls:  []string{"0|f|x.txt|text/plain|x"},
			wantFields: []string{"keep=1", "drop=2", "keep2=3"},
			wantOut:    []string{"keep=1", "f.stored=x.txt", "keep2=3"},
		},
		{
			name:      "Windows path kept",
			body:      form(file("f", `C:\Users\me\My Documents\cv.pdf`, "pdf")),
			wantCalls: []string{`0|f|C:\Users\me\My Documents\cv.pdf|text/plain|pdf`},
			wantOut:   []string{`f.stored=C:\Users\me\My Documents\cv.pdf`},
		},
		{
			name:      "relative path kept",
			body:      form(file("f", "../../etc/passwd", "x")),
			wantCalls: []string{"0|f|../../etc/passwd|text/plain|x"},
			wantOut:   []string{"f.stored=../../etc/passwd"},
		},
		{
			name:       "empty file input skipped",
			body:       form(field("a", "1"), file("f", "", ""), field("b", "2")),
			wantFields: []string{"a=1", "b=2"},
			wantOut:    []string{"a=1", "b=2"},
		},
		{
			name:      "empty file name with content stored",
			body:      form(file("f", "", "data")),
			wantCalls: []string{"0|f||text/plain|data"},
			wantOut:   []string{"f.stored="},
		},
		{
			name:      "empty file name with one byte stored",
			body:      form(file("f", "", "d")),
			wantCalls: []string{"0|f||text/plain|d"},
			wantOut:   []string{"f.stored="},
		},
		{
			name:      "named empty file stored",
			body:      form(file("f", "empty.txt", "")),
			wantCalls: []string{"0|f|empty.txt|text/plain|"},
			wantOut:   []string{"f.stored=empty.txt"},
		},
		{
			name:       "closing boundary without line break",
			body:       strings.TrimSuffix(form(field("a", "1")), "\r\n"),
			wantFields: []string{"a=1"},
			wantOut:    []string{"a=1"},
		},
		{
			name:       "closing boundary followed by blanks",
			body:       strings.TrimSuffix(form(field("a", "1")), "\r\n") + " \t ",
			wantFields: []string{"a=1"},
			wantOut:    []string{"a=1"},
		},
		{
			name:       "preamble and epilogue ignored",
			body:       "preamble\r\n" + form(field("a", "1")) + "epilogue\r\n--" + bnd + "\r\n" + field("b", "2"),
			wantFields: []string{"a=1"},
			wantOut:    []string{"a=1"},
		},
		{
			name:       "LF line endings",
			body:       "--" + bnd + "\nContent-Disposition: form-data; name=\"a\"\n\n1\n--" + bnd + "\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\n\nfile\n--" + bnd + "--\n",
			wantCalls:  []string{"0|f|x||file"},
			wantFields: []string{"a=1"},
			wantOut:    []string{"a=1", "f.stored=x"},
		},
		{
			name:      "header case and parameters",
			body:      form("content-disposition: FORM-DATA; NAME=a; Filename=\"x.txt\"\r\ncontent-type: Text/Plain\r\n\r\nx"),
			wantCalls: []string{"0|a|x.txt|Text/Plain|x"},
			wantOut:   []string{"a.stored=x.txt"},
		},
		{
			name:       "quoted-printable field decoded in Result and forwarded decoded",
			body:       form("Content-Disposition: form-data; name=\"q\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9=\r\n!"),
			wantFields: []string{"q=café!"},
			wantOut:    []string{"q=café!"},
		},
		{
			name:      "quoted-printable-looking file stored as sent",
			body:      form(file("f", "q.txt", "caf=C3=A9")),
			wantCalls: []string{"0|f|q.txt|text/plain|caf=C3=A9"},
			wantOut:   []string{"f.stored=q.txt"},
		},
		{
			name:      "quoted-printable file decoded for store",
			body:      form("Content-Disposition: form-data; name=\"f\"; filename=\"q.txt\"\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\ncaf=C3=A9"),
			wantCalls: []string{"0|f|q.txt||café"},
			wantOut:   []string{"f.stored=q.txt"},
		},
		{
			name:       "identity transfer encodings",
			body:       form("Content-Disposition: form-data; name=\"a\"\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00", "Content-Disposition: form-data; name=\"b\"\r\nContent-Transfer-Encoding: 8BIT\r\n\r\n\xe9"),
			wantFields: []string{"a=\x00", "b=\xe9"},
			wantOut:    []string{"a=\x00", "b=\xe9"},
		},
		{
			name:       "field with a Content-Type",
			body:       form("Content-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{}"),
			wantFields: []string{"meta={}"},
			wantOut:    []string{"meta={}"},
		},
		{
			name: "limits reached exactly",
			body: form(field("a", "12345"), field("b", "123"), file("f", "x", "big file body"), file("g", "y", "z")),
			// 2 × 42 header bytes (`Content-Disposition: form-data; name="a"` + CRLF…),
			// 8 value bytes, and 2 replacement values.
			lim:        formstream.Limits{MaxFiles: 2, MaxFields: 2, MaxFieldBytes: 5, MaxFormBytes: 94},
			wantCalls:  []string{"0|f|x|text/plain|big file body", "1|g|y|text/plain|z"},
			wantFields: []string{"a=12345", "b=123"},
			wantOut:    []string{"a=12345", "b=123", "f.stored=x", "g.stored=y"},
		},

		// Parts another parser would read differently.
		{name: "name* next to name", body: form("Content-Disposition: form-data; name=\"avatar.key\"; name*=UTF-8''x\r\n\r\nv"), wantErr: formstream.ErrMalformed},
		{name: "name* alone", body: form("Content-Disposition: form-data; name*=UTF-8''avatar.key\r\n\r\nv"), wantErr: formstream.ErrMalformed},
		{name: "name continuation", body: form("Content-Disposition: form-data; name*0=\"avatar\"; name*1=\".key\"\r\n\r\nv"), wantErr: formstream.ErrMalformed},
		{name: "other extended parameter", body: form("Content-Disposition: form-data; name=\"a\"; x*=UTF-8''y\r\n\r\nv"), wantErr: formstream.ErrMalformed},
		{name: "name* on a file", body: form("Content-Disposition: form-data; name=\"f\"; name*=UTF-8''g; filename=\"a.txt\"\r\n\r\nv"), wantErr: formstream.ErrMalformed},
		{name: "NUL in a name", body: form("Content-Disposition: form-data; name=\"avatar.key\x00x\"\r\n\r\nv"), wantErr: formstream.ErrMalformed},
		{name: "quote in a name", body: form("Content-Disposition: form-data; name=\"a\\\"b\"\r\n\r\nv"), wantErr: formstream.ErrMalformed},
		{name: "backslash in a name", body: form("Content-Disposition: form-data; name=\"a\\\\b\"\r\n\r\nv"), wantErr: formstream.ErrMalformed},
		{name: "a field name longer than 1 KiB", body: form(field("a"+strings.Repeat("[b]", 400), "v")), wantErr: formstream.ErrMalformed},
		{name: "a file field name longer than 1 KiB", body: form(file(strings.Repeat("f", formstream.MaxNameBytes+1), "a.txt", "1")), wantErr: formstream.ErrMalformed},
		{
			name:       "a field name of exactly 1 KiB is fine",
			body:       form(field(strings.Repeat("n", formstream.MaxNameBytes), "v")),
			wantFields: []string{strings.Repeat("n", formstream.MaxNameBytes) + "=v"},
			wantOut:    []string{strings.Repeat("n", formstream.MaxNameBytes) + "=v"},
		},
		{
			name:       "star inside a quoted value is fine",
			body:       form("Content-Disposition: form-data; name=\"a*b\"; x=\"y; z*=1\"\r\n\r\nv"),
			wantFields: []string{"a*b=v"},
			wantOut:    []string{"a*b=v"},
		},

		// Malformed forms.
		{name: "empty body", body: "", wantErr: formstream.ErrMalformed},
		{name: "garbage", body: "this is not a form\r\n", wantErr: formstream.ErrMalformed},
		{name: "other boundary", body: form(field("a", "1")), boundary: "other", wantErr: formstream.ErrMalformed},
		{name: "empty boundary", body: form(field("a", "1")), boundary: " ", wantErr: formstream.ErrMalformed},
		{name: "boundary too long", body: form(field("a", "1")), boundary: strings.Repeat("b", 71), wantErr: formstream.ErrMalformed},
		{name: "ends after first boundary line", body: "--" + bnd + "\r\n", wantErr: formstream.ErrMalformed},
		{name: "ends in headers", body: "--" + bnd + "\r\nContent-Disposition: form-data; name=\"a\"\r\n", wantErr: formstream.ErrMalformed},
		{name: "ends in header line", body: "--" + bnd + "\r\nContent-Disposition: form-da", wantErr: formstream.ErrMalformed},
		{name: "ends in field", body: "--" + bnd + "\r\n" + field("a", "12"), wantErr: formstream.ErrMalformed},
		{
			name:      "ends in file",
			body:      "--" + bnd + "\r\n" + file("f", "x", "1") + "\r\n--" + bnd + "\r\n" + file("g", "y", "partial"),
			wantErr:   formstream.ErrMalformed,
			wantCalls: []string{"0|f|x|text/plain|1"},
		},
		{name: "ends after part", body: "--" + bnd + "\r\n" + field("a", "1") + "\r\n", wantErr: formstream.ErrMalformed},
		{name: "ends in next boundary", body: "--" + bnd + "\r\n" + field("a", "1") + "\r\n--" + bnd, wantErr: formstream.ErrMalformed},
		{name: "ends in closing boundary", body: "--" + bnd + "\r\n" + field("a", "1") + "\r\n--" + bnd + "-", wantErr: formstream.ErrMalformed},
		{name: "closing boundary then CR", body: "--" + bnd + "\r\n" + field("a", "1") + "\r\n--" + bnd + "--\r", wantErr: formstream.ErrMalformed},
		{name: "closing boundary as header", body: "--" + bnd + "\r\n--" + bnd + "--", wantErr: formstream.ErrMalformed},
		{name: "closing boundary as header continuation", body: "--" + bnd + "\r\nContent-Disposition: form-data;\r\n --" + bnd + "--", wantErr: formstream.ErrMalformed},
		{name: "no Content-Disposition", body: form("Content-Type: text/plain\r\n\r\nx"), wantErr: formstream.ErrMalformed},
		{name: "two Content-Dispositions", body: form("Content-Disposition: form-data; name=\"a\"\r\nContent-Disposition: form-data; name=\"a\"; filename=\"x\"\r\n\r\nx"), wantErr: formstream.ErrMalformed},
		{name: "no name", body: form("Content-Disposition: form-data\r\n\r\nx"), wantErr: formstream.ErrMalformed},
		{name: "no name on a file", body: form("Content-Disposition: form-data; filename=\"x\"\r\n\r\nx"), wantErr: formstream.ErrMalformed},
		{name: "empty name", body: form(field("", "x")), wantErr: formstream.ErrMalformed},
		{name: "attachment", body: form("Content-Disposition: attachment; name=\"a\"; filename=\"x\"\r\n\r\nx"), wantErr: formstream.ErrMalformed},
		{name: "invalid Content-Disposition", body: form("Content-Disposition: form-data; name\r\n\r\nx"), wantErr: formstream.ErrMalformed},
		{name: "duplicate name parameter", body: form("Content-Disposition: form-data; name=a; name=b\r\n\r\nx"), wantErr: formstream.ErrMalformed},
		{name: "filename* in an unknown charset", body: form("Content-Disposition: form-data; name=\"f\"; filename*=X-NO-SUCH''%A3.txt\r\n\r\nx"), wantErr: formstream.ErrMalformed},
		{name: "filename* without its quotes", body: form("Content-Disposition: form-data; name=\"f\"; filename*=%A3.txt\r\n\r\nx"), wantErr: formstream.ErrMalformed},
		{name: "name encoded twice", body: form("Content-Disposition: form-data; name=\"=?utf-8?q?=3D=3Futf-8=3Fq=3Fa=3F=3D?=\"\r\n\r\nx"), wantErr: formstream.ErrMalformed},
		{name: "name in an unknown charset", body: form("Content-Disposition: form-data; name=\"=?x-no-such?q?a?=\"\r\n\r\nx"), wantErr: formstream.ErrMalformed},
		{name: "encoded name with a quote", body: form("Content-Disposition: form-data; name=\"=?utf-8?q?a=22b?=\"\r\n\r\nx"), wantErr: formstream.ErrMalformed},
		{name: "value in an unknown charset", body: form("Content-Disposition: form-data; name=\"a\"\r\nContent-Type: text/plain; charset=x-no-such\r\n\r\nx"), wantErr: formstream.ErrMalformed},
		{name: "nested multipart/mixed", body: form("Content-Disposition: form-data; name=\"files\"\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n--inner--"), wantErr: formstream.ErrMalformed},
		{name: "base64", body: form("Content-Disposition: form-data; name=\"f\"; filename=\"x\"\r\nContent-Transfer-Encoding: base64\r\n\r\neA=="), wantErr: formstream.ErrMalformed},
		{name: "two transfer encodings", body: form("Content-Disposition: form-data; name=\"a\"\r\nContent-Transfer-Encoding: 8bit\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nx"), wantErr: formstream.ErrMalformed},
		{name: "bad quoted-printable field", body: form("Content-Disposition: form-data; name=\"q\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\x01"), wantErr: formstream.ErrMalformed},
		{name: "bad quoted-printable file", body: form("Content-Disposition: form-data; name=\"q\"; filename=\"x\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ\x01"), wantErr: formstream.ErrMalformed},

		// Limits.
		{
			name:      "too many files",
			body:      form(file("f", "x", "1"), file("g", "y", "2")),
			lim:       formstream.Limits{MaxFiles: 1},
			wantErr:   formstream.ErrTooManyFiles,
			wantCalls: []string{"0|f|x|text/plain|1"},
		},
		{
			name:    "too many files, unnamed",
			body:    form(file("f", "x", "1"), file("g", "", "2")),
			lim:     formstream.Limits{MaxFiles: 1},
			wantErr: formstream.ErrTooManyFiles, wantCalls: []string{"0|f|x|text/plain|1"},
		},
		{name: "too many fields", body: form(field("a", ""), field("b", ""), field("c", "")), lim: formstream.Limits{MaxFields: 2}, wantErr: formstream.ErrTooManyFields},
		{name: "empty file inputs count as fields", body: form(field("a", ""), file("f", "", ""), file("g", "", "")), lim: formstream.Limits{MaxFields: 2}, wantErr: formstream.ErrTooManyFields},
		{name: "default field count", body: form(slices.Repeat([]string{field("a", "")}, 1001)...), wantErr: formstream.ErrTooManyFields},
		{name: "field too large", body: form(field("a", "123456")), lim: formstream.Limits{MaxFieldBytes: 5}, wantErr: formstream.ErrFieldTooLarge},
		{name: "default field size", body: form(field("a", strings.Repeat("x", 1<<20+1))), wantErr: formstream.ErrFieldTooLarge},
		{name: "form too large", body: form(field("a", "12345"), field("b", "123456")), lim: formstream.Limits{MaxFormBytes: 10}, wantErr: formstream.ErrFormTooLarge},
		{
			name: "form too large with replacement fields",
			body: form(field("a", "12345"), file("f", "123456", "x")),
			lim:  formstream.Limits{MaxFormBytes: 50}, // field a takes 47 with its header

			wantErr:   formstream.ErrFormTooLarge,
			wantCalls: []string{"0|f|123456|text/plain|x"},
		},
		{name: "header too large", body: form(bigHeader + "\r\n\r\nx"), wantErr: formstream.ErrFormTooLarge},
		{
			name:    "headers count against the form limit",
			body:    form("Content-Disposition: form-data; name=\"a\"\r\nX-Padding: " + strings.Repeat("p", 200) + "\r\n\r\nv"),
			lim:     formstream.Limits{MaxFormBytes: 100},
			wantErr: formstream.ErrFormTooLarge,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			boundary := cmp.Or(tt.boundary, bnd)
			var rec recorder
			var out bytes.Buffer
			mw := multipart.NewWriter(&out)
			res, err := formstream.Rewrite(context.Background(), strings.NewReader(tt.body), boundary, tt.lim, rec.store, mw)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Rewrite() error = %v, want %v", err, tt.wantErr)
				}
			} else if err != nil {
				t.Errorf("Rewrite() error = %v", err)
			}
			if !slices.Equal(rec.calls, tt.wantCalls) {
				t.Errorf("store calls:\n got %q\nwant %q", rec.calls, tt.wantCalls)
			}
			if res.Files != len(rec.calls) && err == nil {
				t.Errorf("Result.Files = %d, want %d", res.Files, len(rec.calls))
			}
			if err != nil || tt.wantErr != nil {
				return
			}
			if got := fieldStrings(res.Fields); !slices.Equal(got, tt.wantFields) {
				t.Errorf("Result.Fields:\n got %q\nwant %q", got, tt.wantFields)
			}
			if err := mw.Close(); err != nil {
				t.Fatal(err)
			}
			if got := parts(t, out.Bytes(), mw.Boundary()); !slices.Equal(got, tt.wantOut) {
				t.Errorf("rewritten form:\n got %q\nwant %q", got, tt.wantOut)
			}
		})
	}
}

// readForm reads testdata/name, turning LF line endings into CRLF, and
// returns it with its boundary (the first line without its leading "--").
func readForm(t testing.TB, path string) (string, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
	first, _, _ := bytes.Cut(b, []byte("\r\n"))
	return strings.TrimPrefix(string(first), "--"), b
}

// nginxStore replaces each file by fields in the style of nginx-upload-module.
func nginxStore(_ context.Context, f *formstream.File) ([]formstream.Field, error) {
	n, err := io.Copy(io.Discard, f.Body)
	if err != nil {
		return nil, err
	}
	return []formstream.Field{
		{Name: f.Field + ".name", Value: f.FileName},
		{Name: f.Field + ".content_type", Value: f.ContentType},
		{Name: f.Field + ".path", Value: fmt.Sprintf("uploads/%d", f.Index)},
		{Name: f.Field + ".size", Value: fmt.Sprint(n)},
	}, nil
}

func TestRewriteGolden(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.form")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata/*.form: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			boundary, body := readForm(t, path)
			var out bytes.Buffer
			mw := multipart.NewWriter(&out)
			if err := mw.SetBoundary("gateway"); err != nil {
				t.Fatal(err)
			}
			if _, err := formstream.Rewrite(context.Background(), bytes.NewReader(body), boundary, formstream.Limits{}, nginxStore, mw); err != nil {
				t.Fatalf("Rewrite() error = %v", err)
			}
			if err := mw.Close(); err != nil {
				t.Fatal(err)
			}
			got := bytes.ReplaceAll(out.Bytes(), []byte("\r\n"), []byte("\n"))
			golden := strings.TrimSuffix(path, ".form") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("rewritten form differs from %s (run with -update to see the diff in git):\n%s", golden, got)
			}
		})
	}
}

var errBoom = errors.New("connection reset by client")

// cancelReader cancels a context, as net/http does when a client hangs up,
// then fails.
type cancelReader struct {
	cancel context.CancelFunc
}

func (r cancelReader) Read([]byte) (int, error) {
	r.cancel()
	return 0, errBoom
}

func TestRewriteBodyReadError(t *testing.T) {
	full := form(field("a", "value"), file("f", "x.txt", "file content"), field("b", "2"))
	at := func(s string) int { return strings.Index(full, s) + 2 }
	opaque := errors.New("s3: upload aborted")
	tests := []struct {
		name      string
		cut       int // the body fails after cut bytes
		store     formstream.StoreFunc
		wantStore error // store's error, wrapped too
	}{
		{name: "in first boundary", cut: 2},
		{name: "in headers", cut: at("Content-Disposition")},
		{name: "in field", cut: at("value")},
		{name: "in file, store returns the read error", cut: at("file content")},
		{
			name: "in file, store returns its own error",
			cut:  at("file content"),
			store: func(_ context.Context, f *formstream.File) ([]formstream.Field, error) {
				if _, err := io.Copy(io.Discard, f.Body); err != nil {
					return nil, opaque
				}
				return nil, nil
			},
			wantStore: opaque,
		},
		{
			name: "in file, store swallows the read error",
			cut:  at("file content"),
			store: func(_ context.Context, f *formstream.File) ([]formstream.Field, error) {
				io.Copy(io.Discard, f.Body)
				return nil, nil
			},
		},
		{
			name: "in file, store reads nothing",
			cut:  at("file content"),
			store: func(context.Context, *formstream.File) ([]formstream.Field, error) {
				return nil, nil
			},
		},
		{name: "before last field", cut: at(`"b"`)},
	}
	for _, tt := range tests {
		for _, hangUp := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/cancel=%v", tt.name, hangUp), func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var fail io.Reader = iotest.ErrReader(errBoom)
				if hangUp {
					fail = cancelReader{cancel}
				}
				body := io.MultiReader(strings.NewReader(full[:tt.cut]), fail)
				store := tt.store
				if store == nil {
					store = new(recorder).store
				}
				_, err := formstream.Rewrite(ctx, body, bnd, formstream.Limits{}, store, multipart.NewWriter(io.Discard))
				if !errors.Is(err, errBoom) || !errors.Is(err, formstream.ErrRead) {
					t.Errorf("Rewrite() error = %v, want %v wrapped in %v", err, errBoom, formstream.ErrRead)
				}
				if errors.Is(err, formstream.ErrMalformed) {
					t.Errorf("Rewrite() error = %v, a read error reported as malformed", err)
				}
				if got := errors.Is(err, context.Canceled); got != hangUp {
					t.Errorf("Rewrite() error = %v, errors.Is(err, context.Canceled) = %v, want %v", err, got, hangUp)
				}
				if tt.wantStore != nil && !errors.Is(err, tt.wantStore) {
					t.Errorf("Rewrite() error = %v, want store's error %v wrapped too", err, tt.wantStore)
				}
			})
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestRewriteStore(t *testing.T) {
	errStore := errors.New("bucket is on fire")
	body := form(file("f", "x", strings.Repeat("1", 100<<10)), field("a", "1"), file("g", "y", "2"))
	tests := []struct {
		name      string
		store     func(calls *int) formstream.StoreFunc
		wantErr   bool
		wantErrIs error // when wantErr
		wantCalls int
		wantOut   []string
		wantRead  func(n int64) bool // how much of body was read
	}{
		{
			name: "error stops at once",
			store: func(calls *int) formstream.StoreFunc {
				return func(_ context.Context, f *formstream.File) ([]formstream.Field, error) {
					*calls++
					io.CopyN(io.Discard, f.Body, 10)
					return nil, fmt.Errorf("uploading: %w", errStore)
				}
			},
			wantErr:   true,
			wantErrIs: errStore,
			wantCalls: 1,
			wantRead:  func(n int64) bool { return n < 16<<10 },
		},
		{
			name: "unread rest drained",
			store: func(calls *int) formstream.StoreFunc {
				return func(_ context.Context, f *formstream.File) ([]formstream.Field, error) {
					*calls++
					io.CopyN(io.Discard, f.Body, 10)
					return []formstream.Field{{Name: f.Field, Value: "stored"}}, nil
				}
			},
			wantCalls: 2,
			wantOut:   []string{"f=stored", "a=1", "g=stored"},
			wantRead:  func(n int64) bool { return n == int64(len(body)) },
		},
		{
			name: "no fields",
			store: func(calls *int) formstream.StoreFunc {
				return func(_ context.Context, f *formstream.File) ([]formstream.Field, error) {
					*calls++
					_, err := io.Copy(io.Discard, f.Body)
					return nil, err
				}
			},
			wantCalls: 2,
			wantOut:   []string{"a=1"},
			wantRead:  func(n int64) bool { return n == int64(len(body)) },
		},
		{
			name: "several fields, names escaped",
			store: func(calls *int) formstream.StoreFunc {
				return func(_ context.Context, f *formstream.File) ([]formstream.Field, error) {
					*calls++
					_, err := io.Copy(io.Discard, f.Body)
					return []formstream.Field{{Name: f.Field + `."quoted"`, Value: "1"}, {Name: f.Field + ".\r\nX-Injected: yes", Value: ""}}, err
				}
			},
			wantCalls: 2,
			wantOut:   []string{`f."quoted"=1`, "f.%0D%0AX-Injected: yes=", "a=1", `g."quoted"=1`, "g.%0D%0AX-Injected: yes="},
			wantRead:  func(n int64) bool { return n == int64(len(body)) },
		},
		{
			name: "field without a name",
			store: func(calls *int) formstream.StoreFunc {
				return func(_ context.Context, f *formstream.File) ([]formstream.Field, error) {
					*calls++
					_, err := io.Copy(io.Discard, f.Body)
					return []formstream.Field{{Name: "", Value: "x"}}, err
				}
			},
			wantErr:   true,
			wantCalls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls int
			src := &countingReader{r: strings.NewReader(body)}
			var out bytes.Buffer
			mw := multipart.NewWriter(&out)
			res, err := formstream.Rewrite(context.Background(), src, bnd, formstream.Limits{}, tt.store(&calls), mw)
			switch {
			case !tt.wantErr && err != nil:
				t.Fatalf("Rewrite() error = %v", err)
			case tt.wantErr && err == nil:
				t.Fatal("Rewrite() error = nil, want an error")
			case tt.wantErrIs != nil && !errors.Is(err, tt.wantErrIs):
				t.Fatalf("Rewrite() error = %v, want %v wrapped", err, tt.wantErrIs)
			}
			if calls != tt.wantCalls {
				t.Errorf("store called %d times, want %d", calls, tt.wantCalls)
			}
			if tt.wantRead != nil && !tt.wantRead(src.n) {
				t.Errorf("read %d bytes of a %d-byte body", src.n, len(body))
			}
			if err != nil {
				return
			}
			if res.Files != tt.wantCalls {
				t.Errorf("Result.Files = %d, want %d", res.Files, tt.wantCalls)
			}
			mw.Close()
			if got := parts(t, out.Bytes(), mw.Boundary()); !slices.Equal(got, tt.wantOut) {
				t.Errorf("rewritten form:\n got %q\nwant %q", got, tt.wantOut)
			}
		})
	}
}

func TestRewriteContext(t *testing.T) {
	body := form(file("f", "x", "1"), field("a", "1"), file("g", "y", "2"))

	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var rec recorder
		_, err := formstream.Rewrite(ctx, strings.NewReader(body), bnd, formstream.Limits{}, rec.store, nil)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Rewrite() error = %v, want %v", err, context.Canceled)
		}
		if len(rec.calls) != 0 {
			t.Errorf("store called %d times, want 0", len(rec.calls))
		}
	})

	t.Run("cancelled during a file", func(t *testing.T) {
		cause := errors.New("server shutting down")
		ctx, cancel := context.WithCancelCause(context.Background())
		var calls int
		store := func(_ context.Context, f *formstream.File) ([]formstream.Field, error) {
			calls++
			cancel(cause)
			_, err := io.Copy(io.Discard, f.Body)
			return nil, err
		}
		res, err := formstream.Rewrite(ctx, strings.NewReader(body), bnd, formstream.Limits{}, store, nil)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, cause) {
			t.Errorf("Rewrite() error = %v, want %v and %v", err, context.Canceled, cause)
		}
		if calls != 1 || res.Files != 1 || len(res.Fields) != 0 {
			t.Errorf("store called %d times, Result %+v; want the first file only", calls, res)
		}
	})
}

func TestRewriteWriteError(t *testing.T) {
	errWrite := errors.New("upstream went away")
	for _, body := range []string{form(field("a", "1")), form(file("f", "x", "1"))} {
		mw := multipart.NewWriter(errWriter{errWrite})
		_, err := formstream.Rewrite(context.Background(), strings.NewReader(body), bnd, formstream.Limits{}, new(recorder).store, mw)
		if !errors.Is(err, errWrite) {
			t.Errorf("Rewrite(%q) error = %v, want %v", body, err, errWrite)
		}
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestRewriteNilOut(t *testing.T) {
	var rec recorder
	res, err := formstream.Rewrite(context.Background(), strings.NewReader(form(field("a", "1"), file("f", "x", "y"))), bnd, formstream.Limits{}, rec.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fieldStrings(res.Fields); !slices.Equal(got, []string{"a=1"}) || res.Files != 1 || len(rec.calls) != 1 {
		t.Errorf("Rewrite() = %q, %d files, %d store calls; want [a=1], 1, 1", got, res.Files, len(rec.calls))
	}
}

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// bigForm returns a form with one file of size zero bytes, and its length.
func bigForm(size int64) (io.Reader, int64) {
	head := "--" + bnd + "\r\nContent-Disposition: form-data; name=\"f\"; filename=\"big.bin\"\r\n\r\n"
	tail := "\r\n--" + bnd + "--\r\n"
	r := io.MultiReader(strings.NewReader(head), io.LimitReader(zeros{}, size), strings.NewReader(tail))
	return r, int64(len(head)) + size + int64(len(tail))
}

func discardStore(_ context.Context, f *formstream.File) ([]formstream.Field, error) {
	n, err := io.Copy(io.Discard, f.Body)
	return []formstream.Field{{Name: f.Field + ".size", Value: fmt.Sprint(n)}}, err
}

func TestRewriteMemoryIndependentOfFileSize(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 64 MiB")
	}
	for _, size := range []int64{1 << 20, 64 << 20} {
		body, _ := bigForm(size)
		mw := multipart.NewWriter(io.Discard)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := formstream.Rewrite(context.Background(), body, bnd, formstream.Limits{}, discardStore, mw); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<10 {
			t.Errorf("a %d-byte file allocated %d bytes, want < 256 KiB", size, alloc)
		}
	}
}

func TestRewriteFieldLimitReadsNoFurther(t *testing.T) {
	body := &countingReader{r: strings.NewReader(form(field("a", strings.Repeat("x", 10<<20))))}
	_, err := formstream.Rewrite(context.Background(), body, bnd, formstream.Limits{MaxFieldBytes: 1000}, new(recorder).store, nil)
	if !errors.Is(err, formstream.ErrFieldTooLarge) {
		t.Fatalf("Rewrite() error = %v, want %v", err, formstream.ErrFieldTooLarge)
	}
	if body.n > 64<<10 {
		t.Errorf("read %d bytes of the body to refuse a 1000-byte field, want < 64 KiB", body.n)
	}
}

func BenchmarkRewrite(b *testing.B) {
	for _, size := range []int64{1 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("file=%dMiB", size>>20), func(b *testing.B) {
			_, n := bigForm(size)
			b.SetBytes(n)
			b.ReportAllocs()
			for b.Loop() {
				body, _ := bigForm(size)
				if _, err := formstream.Rewrite(context.Background(), body, bnd, formstream.Limits{}, discardStore, multipart.NewWriter(io.Discard)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A plain part reaches the upstream with one header, in canonical form,
// whatever the client sent around it: parsers that read Content-Type,
// Content-Transfer-Encoding or extra parameters differently see nothing to
// disagree on.
func TestRewriteCanonicalParts(t *testing.T) {
	body := form(
		"Content-Disposition: form-data;name=title; lang=en\r\nContent-Type: text/plain; charset=latin1\r\nX-Extra: 1\r\n\r\nhello",
		"Content-Disposition: form-data; name=\"q\"\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Type: application/json\r\n\r\ncaf=C3=A9",
	)
	var rec recorder
	var out bytes.Buffer
	mw := multipart.NewWriter(&out)
	if _, err := formstream.Rewrite(context.Background(), strings.NewReader(body), bnd, formstream.Limits{}, rec.store, mw); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	want := []struct{ disposition, value string }{
		{`form-data; name="title"`, "hello"},
		{`form-data; name="q"`, "café"},
	}
	mr := multipart.NewReader(&out, mw.Boundary())
	for i, w := range want {
		p, err := mr.NextRawPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if len(p.Header) != 1 || p.Header.Get("Content-Disposition") != w.disposition {
			t.Errorf("part %d headers = %q, want only Content-Disposition: %s", i, p.Header, w.disposition)
		}
		if v, _ := io.ReadAll(p); string(v) != w.value {
			t.Errorf("part %d value = %q, want %q", i, v, w.value)
		}
	}
	if _, err := mr.NextRawPart(); err != io.EOF {
		t.Errorf("after the last part: %v, want EOF", err)
	}
}
