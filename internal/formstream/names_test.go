package formstream_test

import (
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
)

// The PHP cases were checked against PHP 8.2's parse_str, which registers
// variables with the same code as $_POST.
func TestSameField(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"avatar.key", "avatar.key", true},
		{"avatar_key", "avatar.key", true},  // PHP: avatar_key
		{"avatar key", "avatar.key", true},  // PHP: avatar_key
		{" avatar.key", "avatar.key", true}, // PHP drops leading spaces
		{"avatar[key", "avatar.key", true},  // PHP: an unclosed [ is _
		{"avatar.key[x]", "avatar.key", true},
		{"avatar_key[]", "avatar.key", true},  // PHP: an array where the string was
		{"[avatar.key]", "avatar.key", true},  // Rack 2 drops the brackets
		{"avatar.key]]", "avatar.key", true},  // Rack 2 too
		{"avatar[key]", "avatar[key]x", true}, // PHP and Rack 2 ignore the tail
		{"avatar[key]", "avatar.key", false},  // ['avatar']['key'] is not avatar_key
		{"avatar.keys", "avatar.key", false},
		{"avatar.key]", "avatar.key", true}, // Rack 2
		{"title", "avatar.key", false},
		{"[x]", "avatar.key", false},
		{"post[title]", "post[image].key", false},
		{"post[image]", "post[image].key", true}, // PHP: both are ['post']['image']
	}
	for _, tt := range tests {
		if got := formstream.SameField(tt.a, tt.b); got != tt.want {
			t.Errorf("SameField(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := formstream.SameField(tt.b, tt.a); got != tt.want {
			t.Errorf("SameField(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestEndsLike(t *testing.T) {
	tests := []struct {
		name, suffix string
		want         bool
	}{
		{"doc.key", ".key", true},
		{"doc_key", ".key", true}, // PHP reads doc.key as doc_key
		{"doc key", ".key", true},
		{"doc[key", ".key", true},
		{"[doc.key]", ".key", true},
		{".key", ".key", true},
		{"doc.keys", ".key", false},
		{"key", ".key", false},
		{"docs", ".key", false},
		{"a[doc][key]", "[key]", true},
		{"a[doc][key]junk", "[key]", true}, // PHP ignores the tail
		{"a[key][doc]", "[key]", false},
		{"title", "_path", false},
		{"x_path", "_path", true},
		{"anything", "", false},
	}
	for _, tt := range tests {
		if got := formstream.EndsLike(tt.name, tt.suffix); got != tt.want {
			t.Errorf("EndsLike(%q, %q) = %v, want %v", tt.name, tt.suffix, got, tt.want)
		}
	}
}
