package passfields_test

import (
	"io"
	"strings"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
	"github.com/caddy-upload-gateway/upload-gateway/internal/passfields"
)

func TestAttr(t *testing.T) {
	tests := []struct {
		template string
		want     string
		ok       bool
	}{
		{"{upload.field}.key", "key", true},
		{"{upload.field}.content_type", "content_type", true},
		{"{upload.field}.", "", false},
		{"{upload.field}.a.b", "", false},
		{"{upload.field}.a[b]", "", false},
		{"{upload.field}.{upload.index}", "", false},
		{"{upload.field}_key", "", false},
		{"x{upload.field}.key", "", false},
		{"{upload.field}[key]", "", false},
	}
	for _, tt := range tests {
		got, ok := passfields.Attr(tt.template)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Attr(%q) = %q, %v; want %q, %v", tt.template, got, ok, tt.want, tt.ok)
		}
	}
}

func TestName(t *testing.T) {
	tests := []struct {
		style, field string
		index        int
		want         string
	}{
		{passfields.StyleDotted, "avatar", 0, "avatar.key"},
		{"", "avatar", 3, "avatar.key"},
		{passfields.StyleDotted, "docs[]", 0, "docs[0][key]"},
		{passfields.StyleDotted, "docs[]", 12, "docs[12][key]"},
		{passfields.StyleDotted, "user[photo]", 0, "user[photo][key]"},
		{passfields.StyleDotted, "user[docs][]", 1, "user[docs][1][key]"},
		{passfields.StyleDotted, "a[][b]", 2, "a[2][b][key]"},
		{passfields.StyleDotted, "docs[3]", 0, "docs[3][key]"},
		{passfields.StyleNested, "avatar", 0, "avatar[key]"},
		{passfields.StyleNested, "docs[]", 1, "docs[1][key]"},
		{passfields.StyleNested, "写真[]", 0, "写真[0][key]"},
	}
	for _, tt := range tests {
		if got := passfields.Name(tt.style, tt.field, tt.index, "key"); got != tt.want {
			t.Errorf("Name(%q, %q, %d, key) = %q, want %q", tt.style, tt.field, tt.index, got, tt.want)
		}
	}
}

func TestBase(t *testing.T) {
	for field, want := range map[string]string{
		"avatar": "avatar", "docs[]": "docs", "user[docs][]": "user[docs]", "user[photo]": "user[photo]", "a[][b]": "a",
	} {
		if got := passfields.Base(field); got != want {
			t.Errorf("Base(%q) = %q, want %q", field, got, want)
		}
	}
}

func TestCounter(t *testing.T) {
	var c passfields.Counter
	var got []int
	for _, f := range []string{"docs[]", "docs[]", "photos[]", "docs[]", "photos[]"} {
		got = append(got, c.Next(f))
	}
	if want := []int{0, 1, 0, 2, 1}; !equal(got, want) {
		t.Errorf("indexes = %v, want %v", got, want)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var defaults = []string{"{upload.field}.name", "{upload.field}.key", "{upload.field}.size"}

// A client's plain field is refused when any parser reads it as a field the
// gateway writes or may write.
func TestReserve(t *testing.T) {
	tests := []struct {
		name      string
		style     string
		templates []string
		written   map[string][]string // file field → names written for it
		refused   []string
		accepted  []string
	}{
		{
			name: "dotted defaults reserve their endings as PHP reads them", style: passfields.StyleDotted, templates: defaults,
			refused:  []string{"avatar.key", "avatar_key", "first_name", "api key", "x.size"},
			accepted: []string{"title", "keys", "user[name]", "docs[0][comment]"},
		},
		{
			name: "nested defaults reserve nothing before a file", style: passfields.StyleNested, templates: defaults,
			accepted: []string{"avatar.key", "avatar_key", "first_name", "api_key", "user[name]", "avatar[key]"},
		},
		{
			name: "nested: a stored file reserves its subtree", style: passfields.StyleNested, templates: defaults,
			written:  map[string][]string{"avatar": {"avatar[name]", "avatar[key]"}},
			refused:  []string{"avatar", "avatar[key]", "avatar[other]", "[avatar][key]"},
			accepted: []string{"first_name", "api_key", "avatar_caption", "user[avatar]"},
		},
		{
			name: "an array field reserves the whole array", style: passfields.StyleDotted, templates: defaults,
			written:  map[string][]string{"docs[]": {"docs[0][name]", "docs[0][key]"}},
			refused:  []string{"docs[7][key]", "docs[][key]", "docs[0][caption]", "docs"},
			accepted: []string{"doc", "documents[0][key]", "title"},
		},
		{
			name: "an indexed file field reserves its own subtree only", style: passfields.StyleDotted, templates: defaults,
			written:  map[string][]string{"post[files][0][file]": {"post[files][0][file][key]"}},
			refused:  []string{"post[files][0][file][size]"},
			accepted: []string{"post[files][0][caption]", "post[title]"},
		},
		{
			name: "fixed names and bases", templates: []string{"upload_key", "uploads[{upload.index}][key]", "{upload.field_base}_key[]"},
			refused:  []string{"upload_key", "upload.key", "uploads[0][key]", "uploads", "docs_key[]"},
			accepted: []string{"api_key", "upload"},
		},
		{
			name: "templates nested under the field reserve nothing before a file", templates: []string{"{upload.field}[key]", "{upload.field_base}[{upload.index}][sha]"},
			accepted: []string{"user[key]", "x[0][sha]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := new(formstream.Reserved)
			passfields.Reserve(r, tt.style, tt.templates)
			for field, names := range tt.written {
				var fields []formstream.Field
				for _, n := range names {
					fields = append(fields, formstream.Field{Name: n})
				}
				passfields.ReserveWritten(r, field, fields)
			}
			for _, n := range tt.refused {
				if !r.Match(n) {
					t.Errorf("%q accepted, want refused", n)
				}
			}
			for _, n := range tt.accepted {
				if r.Match(n) {
					t.Errorf("%q refused, want accepted", n)
				}
			}
		})
	}
}

func TestDigests(t *testing.T) {
	tests := []struct {
		name           string
		md5, crc       bool
		wantMD5, wantC string
	}{
		{name: "none"},
		{name: "md5", md5: true, wantMD5: "9e107d9d372bb6826bd81d3542a419d6"},
		{name: "crc32", crc: true, wantC: "414fa339"},
		{name: "both", md5: true, crc: true, wantMD5: "9e107d9d372bb6826bd81d3542a419d6", wantC: "414fa339"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := passfields.NewDigests(tt.md5, tt.crc)
			if (d == nil) != (!tt.md5 && !tt.crc) {
				t.Fatalf("NewDigests(%v, %v) = %v", tt.md5, tt.crc, d)
			}
			b, err := io.ReadAll(d.Reader(strings.NewReader("The quick brown fox jumps over the lazy dog")))
			if err != nil || len(b) != 43 {
				t.Fatalf("read %d bytes, %v", len(b), err)
			}
			if d.MD5() != tt.wantMD5 || d.CRC32() != tt.wantC {
				t.Errorf("MD5, CRC32 = %q, %q; want %q, %q", d.MD5(), d.CRC32(), tt.wantMD5, tt.wantC)
			}
		})
	}
}

func TestNeeded(t *testing.T) {
	md5, crc := passfields.Needed([]string{"{upload.key}", "{upload.md5}"})
	if !md5 || crc {
		t.Errorf("Needed = %v, %v; want true, false", md5, crc)
	}
	md5, crc = passfields.Needed([]string{"{upload.crc32}-{upload.size}"})
	if md5 || !crc {
		t.Errorf("Needed = %v, %v; want false, true", md5, crc)
	}
}
