package objectkey

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf8"
)

func bword(s string) string {
	return "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
}

func TestMetadataValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", ""},
		{"ascii", "plain report.pdf", "plain report.pdf"},
		{"ascii punctuation", `a"b;c=d,e<f>`, `a"b;c=d,e<f>`},
		{"header injection", "a\r\nX-Evil: 1", "aX-Evil: 1"},
		{"NUL and tab", "a\x00b\tc", "abc"},
		{"DEL and C1", "a\x7fb\u0085c", "abc"},
		{"non-ASCII", "résumé.pdf", bword("résumé.pdf")},
		{"non-ASCII after stripping", "中\r\n文", bword("中文")},
		{"format characters are kept, encoded", "a\u202eb", bword("a\u202eb")},
		{"invalid UTF-8", "a\xffb", bword("a\uFFFDb")},
		{"looks like an encoded word", "=?UTF-8?B?ZXZpbA==?=", bword("=?UTF-8?B?ZXZpbA==?=")},
		{"leading space", " lead", bword(" lead")},
		{"trailing space", "trail ", bword("trail ")},
		{"long ascii", strings.Repeat("a", 2000), strings.Repeat("a", MaxMetadataValueLen)},
		{
			"two words",
			strings.Repeat("é", 30), // 60 bytes: 22 characters (44 bytes) fit in the first word
			bword(strings.Repeat("é", 22)) + " " + bword(strings.Repeat("é", 8)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := MetadataValue(tt.in)
			if got != tt.want {
				t.Errorf("MetadataValue(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestMetadataValueRoundTrip checks that every value is a safe header and
// decodes back to the input without its control characters, or to the
// longest prefix of it that fits.
func TestMetadataValueRoundTrip(t *testing.T) {
	t.Parallel()
	inputs := []string{
		"", "plain", "résumé.pdf", "中文文件.docx", "кириллица", "😀 emoji",
		"=?", "?=", "a =?x?= b", " ", "  both  ", "e\u0301", "a\r\nb",
		strings.Repeat("é", 1000),
		strings.Repeat("中", 1000),
		strings.Repeat("😀", 1000),
		strings.Repeat("a", 1000) + "é",
		strings.Repeat("e\u0301", 400),
	}
	inputs = append(inputs, readCorpus(t, "testdata/traversal.txt")...)
	for _, in := range inputs {
		got := MetadataValue(in)
		if len(got) > MaxMetadataValueLen {
			t.Errorf("MetadataValue(%.20q...) is %d bytes, longer than %d", in, len(got), MaxMetadataValueLen)
		}
		for i := 0; i < len(got); i++ {
			if got[i] < 0x20 || got[i] > 0x7e {
				t.Fatalf("MetadataValue(%q) = %q: byte %#x is not printable ASCII", in, got, got[i])
			}
		}
		dec, err := DecodeMetadataValue(got)
		if err != nil {
			t.Fatalf("DecodeMetadataValue(MetadataValue(%q)): %v", in, err)
		}
		want := strings.Map(func(r rune) rune {
			if r < 0x20 || 0x7f <= r && r < 0xa0 {
				return -1
			}
			return r
		}, strings.ToValidUTF8(in, "\uFFFD"))
		if !strings.HasPrefix(want, dec) {
			t.Fatalf("MetadataValue(%q) = %q decodes to %q, not a prefix of %q", in, got, dec, want)
		}
		if dec != want {
			// Cut: the next character must not have fit.
			_, size := utf8.DecodeRuneInString(want[len(dec):])
			if longer := encodeWords(want[:len(dec)+size]); len(longer) <= MaxMetadataValueLen {
				t.Errorf("MetadataValue(%.20q...) kept %d bytes, but %d fit", in, len(dec), len(dec)+size)
			}
		}
	}
}

func TestDecodeMetadataValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"plain", "report.pdf", "report.pdf", false},
		{"as S3 returns it", "=?UTF-8?B?w6k=?=", "é", false},
		{"Q encoding", "=?utf-8?q?caf=C3=A9?=", "café", false},
		{"adjacent words", "=?UTF-8?B?w6k=?= =?UTF-8?B?w6k=?=", "éé", false},
		{"latin-1", "=?ISO-8859-1?Q?caf=E9?=", "café", false},
		{"unknown charset", "=?x-unknown?B?YQ==?=", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeMetadataValue(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("DecodeMetadataValue(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("DecodeMetadataValue(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestPercentEncode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
	}{
		{"", ""},
		{"report.pdf", "report.pdf"},
		{"résumé.pdf", "r%C3%A9sum%C3%A9.pdf"},
		{"中", "%E4%B8%AD"},
		{"a b;c\"d", "a%20b%3Bc%22d"},
		{"!#$&+-.^_`|~", "!#$&+-.^_`|~"},
		{"%", "%25"},
		{"'*()/\\", "%27%2A%28%29%2F%5C"},
		{"\r\n", "%0D%0A"},
		{"a\xffb", "a%EF%BF%BDb"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := PercentEncode(tt.in); got != tt.want {
				t.Errorf("PercentEncode(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestContentDisposition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
	}{
		{"report.pdf", `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`},
		{"my report (1).pdf", `attachment; filename="my report (1).pdf"; filename*=UTF-8''my%20report%20%281%29.pdf`},
		{"résumé.pdf", `attachment; filename="resume.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`},
		{"Ærøskøbing.txt", `attachment; filename="_r_sk_bing.txt"; filename*=UTF-8''%C3%86r%C3%B8sk%C3%B8bing.txt`},
		{"中文.pdf", `attachment; filename="file.pdf"; filename*=UTF-8''%E4%B8%AD%E6%96%87.pdf`},
		{"evil\"\r\nX: y.txt", `attachment; filename="evil_X_y.txt"; filename*=UTF-8''evil_X_y.txt`},
		{`..\..\a"b.txt`, `attachment; filename="a_b.txt"; filename*=UTF-8''a_b.txt`},
		{"", `attachment; filename="file"; filename*=UTF-8''file`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := ContentDisposition(tt.in); got != tt.want {
				t.Errorf("ContentDisposition(%q) =\n%s\nwant\n%s", tt.in, got, tt.want)
			}
		})
	}
}
