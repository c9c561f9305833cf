package contenttype

import (
	"archive/zip"
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const docxType = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

// fixture returns the body of a named test file: images and archives are
// produced by the standard library's encoders, the rest is read from
// testdata (see testdata/README.md).
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	var buf bytes.Buffer
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	img.Set(0, 0, color.RGBA{R: 255, A: 255})
	var err error
	switch name {
	case "png":
		err = png.Encode(&buf, img)
	case "jpeg":
		err = jpeg.Encode(&buf, img, nil)
	case "gif":
		err = gif.Encode(&buf, img, nil)
	case "zip":
		err = writeZip(&buf, zip.Deflate, "hello.txt", "hello")
	case "docx":
		// The entries Word writes first.
		err = writeZip(&buf, zip.Deflate,
			"[Content_Types].xml", `<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>`,
			"_rels/.rels", `<?xml version="1.0"?><Relationships/>`,
			"word/document.xml", `<?xml version="1.0"?><w:document/>`)
	case "docx-late":
		// A DOCX whose "word/" entry starts after SniffLen bytes.
		err = writeZip(&buf, zip.Store,
			"[Content_Types].xml", strings.Repeat("<Default/>", SniffLen/10+1),
			"word/document.xml", `<?xml version="1.0"?><w:document/>`)
	default:
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err != nil {
		t.Fatalf("building %s: %v", name, err)
	}
	return buf.Bytes()
}

// writeZip writes a zip archive of name, content pairs.
func writeZip(w *bytes.Buffer, method uint16, nameContent ...string) error {
	zw := zip.NewWriter(w)
	for i := 0; i < len(nameContent); i += 2 {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: nameContent[i], Method: method})
		if err != nil {
			return err
		}
		if _, err := f.Write([]byte(nameContent[i+1])); err != nil {
			return err
		}
	}
	return zw.Close()
}

func head(b []byte) []byte { return b[:min(len(b), SniffLen)] }

// detect is the type an allow-list that allows everything stores for a body
// declared as nothing: the detected one, lowercase and without parameters.
func detect(head []byte) string {
	got, _ := (*Allowlist)(nil).Check("", head)
	return got
}

func TestDetect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture string
		want    string
	}{
		{"png", "image/png"},
		{"jpeg", "image/jpeg"},
		{"gif", "image/gif"},
		{"minimal.pdf", "application/pdf"},
		{"zip", "application/zip"},
		{"docx", docxType},
		{"docx-late", "application/zip"},
		{"elf-exec.bin", "application/x-executable"},
		{"pe-stub.bin", "application/vnd.microsoft.portable-executable"},
		{"page.html", "text/html"}, // mimetype says "text/html; charset=utf-8"
		{"image.svg", "image/svg+xml"},
		{"doc.xml", "text/xml"}, // "; charset=utf-8" from the declaration is dropped
		{"hello.txt", "text/plain"},
		{"people.csv", "text/csv"},
		{"data.json", "application/json"},
		{"unknown.bin", "application/octet-stream"},
		{"empty.txt", "text/plain"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			if got := detect(head(fixture(t, tt.fixture))); got != tt.want {
				t.Errorf("detect(%s) = %q, want %q", tt.fixture, got, tt.want)
			}
		})
	}
}

// TestSniffLen pins SniffLen to mimetype's read limit and shows why callers
// must pass that many bytes.
func TestSniffLen(t *testing.T) {
	t.Parallel()
	t.Run("bytes past SniffLen are not read", func(t *testing.T) {
		t.Parallel()
		text := bytes.Repeat([]byte("a"), SniffLen+1)
		text[SniffLen] = 0 // a binary byte just past the limit
		if got := detect(text); got != "text/plain" {
			t.Errorf("binary byte at offset %d: detect = %q, want text/plain (mimetype read past SniffLen)", SniffLen, got)
		}
		text[SniffLen-1] = 0 // and one just inside
		if got := detect(text); got != "application/octet-stream" {
			t.Errorf("binary byte at offset %d: detect = %q, want application/octet-stream (mimetype reads less than SniffLen)", SniffLen-1, got)
		}
	})
	t.Run("a shorter head loses wide CSV", func(t *testing.T) {
		t.Parallel()
		// mimetype accepts CSV after 10 rows of equal width; before that a
		// row cut short by the end of the input is forgiven only when the
		// input is as long as its limit. Rows of 400 bytes: 3072 bytes hold
		// 7 rows and a cut one, SniffLen bytes hold 10.
		field := strings.Repeat("x", 99)
		row := strings.Join([]string{field, field, field, field}, ",") + "\n"
		body := []byte(strings.Repeat(row, 20))
		if got := detect(body[:SniffLen]); got != "text/csv" {
			t.Errorf("detect(first %d bytes of CSV) = %q, want text/csv", SniffLen, got)
		}
		if got := detect(body[:3072]); got != "text/plain" {
			t.Errorf("detect(first 3072 bytes of CSV) = %q, want text/plain", got)
		}
	})
}

func TestNewAllowlist(t *testing.T) {
	t.Parallel()
	tests := []struct {
		patterns []string
		wantErr  bool
		wantAll  bool
	}{
		{nil, false, true},
		{[]string{}, false, true},
		{[]string{"*/*"}, false, true},
		{[]string{"image/png", "*/*"}, false, true},
		{[]string{"image/*", "application/pdf", "text/plain"}, false, false},
		{[]string{"IMAGE/PNG"}, false, false},
		{[]string{" text/plain; charset=utf-8 "}, false, false},
		{[]string{""}, true, false},
		{[]string{"image"}, true, false},
		{[]string{"*/png"}, true, false},
		{[]string{"*"}, true, false},
		{[]string{"image/p*"}, true, false},
		{[]string{"im*/png"}, true, false},
		{[]string{"/png"}, true, false},
		{[]string{"image/"}, true, false},
		{[]string{"image/png/x"}, true, false},
		{[]string{"image/png", "bad"}, true, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.patterns, ","), func(t *testing.T) {
			t.Parallel()
			a, err := NewAllowlist(tt.patterns)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewAllowlist(%q) error = %v, want error %v", tt.patterns, err, tt.wantErr)
			}
			if err == nil && a.AllowsAll() != tt.wantAll {
				t.Errorf("NewAllowlist(%q).AllowsAll() = %v, want %v", tt.patterns, a.AllowsAll(), tt.wantAll)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	var (
		images  = []string{"image/*", "application/pdf"}
		text    = []string{"text/plain"}
		csvOnly = []string{"text/csv"}
		zips    = []string{"application/zip"}
		apps    = []string{"application/*"}
	)
	tests := []struct {
		name     string
		patterns []string
		declared string
		fixture  string
		want     string
		wantErr  error
	}{
		// An allow-list of images and PDF.
		{"png", images, "", "png", "image/png", nil},
		{"png declared", images, "image/png", "png", "image/png", nil},
		{"png declared with case and parameters", images, "IMAGE/PNG; foo=bar", "png", "image/png", nil},
		{"png declared octet-stream", images, "application/octet-stream", "png", "image/png", nil},
		{"png declared garbage", images, "not a type", "png", "image/png", nil},
		{"png declared wildcard", images, "image/*", "png", "image/png", nil},
		{"jpeg", images, "", "jpeg", "image/jpeg", nil},
		{"gif", images, "image/gif", "gif", "image/gif", nil},
		{"pdf", images, "", "minimal.pdf", "application/pdf", nil},
		{"pdf declared by alias", images, "application/x-pdf", "minimal.pdf", "application/x-pdf", nil},
		{"svg is an image by name", images, "", "image.svg", "image/svg+xml", nil},
		{"png declared jpeg", images, "image/jpeg", "png", "", ErrMismatch},
		{"ELF declared png", images, "image/png", "elf-exec.bin", "", ErrMismatch},
		{"PE declared png", images, "image/png", "pe-stub.bin", "", ErrMismatch},
		{"HTML declared png", images, "image/png", "page.html", "", ErrMismatch},
		{"SVG declared png", images, "image/png", "image.svg", "", ErrMismatch},
		{"text declared png", images, "image/png", "hello.txt", "", ErrMismatch},
		{"empty declared png", images, "image/png", "empty.txt", "", ErrMismatch},
		{"unknown binary declared png", images, "image/png", "unknown.bin", "", ErrMismatch},
		{"ELF", images, "", "elf-exec.bin", "", ErrNotAllowed},
		{"PE declared octet-stream", images, "application/octet-stream", "pe-stub.bin", "", ErrNotAllowed},
		{"HTML", images, "", "page.html", "", ErrNotAllowed},
		{"text", images, "", "hello.txt", "", ErrNotAllowed},
		{"empty", images, "", "empty.txt", "", ErrNotAllowed},
		{"png declared text", images, "text/plain", "png", "", ErrNotAllowed},

		// text/plain admits its children, but not markup.
		{"csv under text/plain", text, "", "people.csv", "text/csv", nil},
		{"csv declared", text, "text/csv", "people.csv", "text/csv", nil},
		{"csv declared with charset", text, "text/csv; charset=UTF-8", "people.csv", "text/csv; charset=utf-8", nil},
		{"text keeps only charset", text, "Text/Plain; Charset=ISO-8859-1; format=flowed", "hello.txt", "text/plain; charset=iso-8859-1", nil},
		{"json under text/plain", text, "", "data.json", "application/json", nil},
		{"json declared on plain text", text, "application/json", "hello.txt", "application/json", nil},
		{"csv declared as plain text", text, "text/plain", "people.csv", "text/plain", nil},
		{"empty is text", text, "", "empty.txt", "text/plain", nil},
		{"HTML is not plain text", text, "", "page.html", "", ErrNotAllowed},
		{"HTML declared plain text", text, "text/plain", "page.html", "", ErrNotAllowed},
		{"SVG is not plain text", text, "", "image.svg", "", ErrNotAllowed},
		{"XML is not plain text", text, "", "doc.xml", "", ErrNotAllowed},
		{"markdown is not listed", text, "text/markdown", "hello.txt", "", ErrNotAllowed},
		{"html declared on plain text", text, "text/html", "hello.txt", "", ErrNotAllowed},
		{"png", text, "", "png", "", ErrNotAllowed},
		{"binary declared text", text, "text/plain", "unknown.bin", "", ErrMismatch},

		// A declared type refines what mimetype cannot tell.
		{"csv", csvOnly, "", "people.csv", "text/csv", nil},
		{"one-column csv declared", csvOnly, "text/csv", "hello.txt", "text/csv", nil},
		{"one-column csv undeclared", csvOnly, "", "hello.txt", "", ErrNotAllowed},
		{"HTML declared csv", csvOnly, "text/csv", "page.html", "", ErrMismatch},
		{"JSON declared csv", csvOnly, "text/csv", "data.json", "", ErrMismatch},

		// application/zip admits the formats built on ZIP.
		{"zip", zips, "", "zip", "application/zip", nil},
		{"docx under zip", zips, "", "docx", docxType, nil},
		{"docx declared zip", zips, "application/zip", "docx", "application/zip", nil},
		{"docx declared", zips, docxType, "docx", docxType, nil},
		{"docx seen as zip, declared docx", zips, docxType, "docx-late", docxType, nil},
		{"zip declared by alias", zips, "application/x-zip-compressed", "zip", "application/x-zip-compressed", nil},
		{"png declared zip", zips, "application/zip", "png", "", ErrMismatch},
		{"pdf", zips, "", "minimal.pdf", "", ErrNotAllowed},
		{"docx under an alias", []string{"application/x-zip-compressed"}, "", "docx", docxType, nil},

		// The root is nobody's parent.
		{"png is not application/*", apps, "", "png", "", ErrNotAllowed},
		{"unknown binary", apps, "", "unknown.bin", "application/octet-stream", nil},
		{"unknown binary declared unknown type", apps, "application/x-custom", "unknown.bin", "application/x-custom", nil},
		{"unknown binary declared known type", apps, "application/pdf", "unknown.bin", "", ErrMismatch},
		{"ELF is an application", apps, "", "elf-exec.bin", "application/x-executable", nil},
		{"ELF declared by parent", apps, "application/x-elf", "elf-exec.bin", "application/x-elf", nil},
		{"model declared on unknown binary", []string{"model/*"}, "model/stl", "unknown.bin", "model/stl", nil},
		{"model undeclared", []string{"model/*"}, "", "unknown.bin", "", ErrNotAllowed},

		// Allow everything: nothing is checked.
		{"all: ELF declared png", nil, "image/png", "elf-exec.bin", "image/png", nil},
		{"all: HTML", nil, "", "page.html", "text/html", nil},
		{"all: empty", nil, "", "empty.txt", "text/plain", nil},
		{"all: declared with charset", nil, "Text/HTML; Charset=UTF-8", "page.html", "text/html; charset=utf-8", nil},
		{"all: octet-stream declared", nil, "application/octet-stream", "png", "image/png", nil},
		{"*/*: ELF", []string{"*/*"}, "", "elf-exec.bin", "application/x-executable", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := NewAllowlist(tt.patterns)
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.Check(tt.declared, head(fixture(t, tt.fixture)))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("allow %q: Check(%q, %s) error = %v, want %v", tt.patterns, tt.declared, tt.fixture, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("allow %q: Check(%q, %s) = %q, want %q", tt.patterns, tt.declared, tt.fixture, got, tt.want)
			}
		})
	}
}

// TestCheckErrorNamesTypes checks that a refusal says what was found.
func TestCheckErrorNamesTypes(t *testing.T) {
	t.Parallel()
	a, err := NewAllowlist([]string{"image/*"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Check("", fixture(t, "elf-exec.bin"))
	if want := "content type not allowed: detected application/x-executable"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
	_, err = a.Check("image/png", fixture(t, "page.html"))
	if want := "content type does not match the content: declared image/png, detected text/html"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestNilAllowlist(t *testing.T) {
	t.Parallel()
	var a *Allowlist
	if !a.AllowsAll() {
		t.Error("nil Allowlist: AllowsAll() = false, want true")
	}
	got, err := a.Check("image/png", fixture(t, "elf-exec.bin"))
	if err != nil || got != "image/png" {
		t.Errorf("nil Allowlist: Check = %q, %v, want image/png, nil", got, err)
	}
}

func TestAllows(t *testing.T) {
	tests := []struct {
		patterns []string
		mt       string
		want     bool
	}{
		{nil, "application/x-msdownload", true},
		{[]string{"image/*"}, "image/png", true},
		{[]string{"image/*"}, "IMAGE/PNG; q=1", true},
		{[]string{"image/*"}, "application/pdf", false},
		{[]string{"image/*"}, "", false},
		{[]string{"image/*"}, "*/*", false},
		{[]string{"image/*", "application/octet-stream"}, "", true},
		{[]string{"application/zip"}, "application/vnd.openxmlformats-officedocument.wordprocessingml.document", true},
		{[]string{"text/plain"}, "text/csv", true},
		{[]string{"text/plain"}, "text/html", false},
		{[]string{"text/csv"}, "text/csv; charset=utf-8", true},
		{[]string{"application/*"}, "image/png", false},
	}
	for _, tt := range tests {
		a, err := NewAllowlist(tt.patterns)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Allows(tt.mt); got != tt.want {
			t.Errorf("%v allows %q = %v, want %v", tt.patterns, tt.mt, got, tt.want)
		}
	}
}

func TestPatterns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		patterns []string
		want     []string
	}{
		{nil, nil},
		{[]string{"*/*", "image/png"}, nil},
		{[]string{"Text/Plain; charset=utf-8", "image/*", "application/pdf", "image/*", "text/plain"},
			[]string{"application/pdf", "image/*", "text/plain"}},
	}
	for _, tt := range tests {
		a, err := NewAllowlist(tt.patterns)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Patterns(); !slices.Equal(got, tt.want) {
			t.Errorf("NewAllowlist(%q).Patterns() = %q, want %q", tt.patterns, got, tt.want)
		}
	}
	var none *Allowlist
	if got := none.Patterns(); got != nil {
		t.Errorf("nil Allowlist: Patterns() = %q, want nil", got)
	}
}
