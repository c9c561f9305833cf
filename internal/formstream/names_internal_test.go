package formstream

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// rack2Path's loop reads names exactly as the regular expression Rack 2
// uses did.
func TestRack2PathMatchesRegexp(t *testing.T) {
	key := regexp.MustCompile(`\A[\[\]]*([^\[\]]+)\]*`)
	ref := func(name string) []string {
		var path []string
		for name != "" {
			m := key.FindStringSubmatchIndex(name)
			if m == nil {
				break
			}
			k, after := name[m[2]:m[3]], name[m[1]:]
			switch {
			case after == "":
				return append(path, k)
			case after == "[":
				return append(path, name)
			case strings.HasPrefix(after, "[]"):
				return append(path, k, "")
			}
			path = append(path, k)
			name = after
		}
		return path
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ab[]._ \xff"
	for range 20000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if got, want := rack2Path(string(b)), ref(string(b)); !slices.Equal(got, want) {
			t.Fatalf("rack2Path(%q) = %q, want %q", b, got, want)
		}
	}
}

// Checking a name against a Reserved set reads the name once per parser,
// however many names the set holds: a form of 1000 fields checked against
// 100 written names does not parse 1000 × 100 pairs.
func TestReservedReadsEachNameOnce(t *testing.T) {
	calls := 0
	saved := slices.Clone(parsers)
	defer func() { parsers = saved }()
	for i, parse := range saved {
		parsers[i] = func(n string) []string { calls++; return parse(n) }
	}

	const written, fields = 100, 1000
	var r Reserved
	for i := range written {
		r.AddName(fmt.Sprintf("file%d.key", i))
	}
	r.AddEnding(".key")
	r.AddEnding(".sha256")
	setup := calls
	if want := len(parsers) * (written + 2); setup != want {
		t.Errorf("adding: %d parser calls, want %d", setup, want)
	}

	long := "a" + strings.Repeat("[b]", (MaxNameBytes-1)/3)
	for i := range fields {
		name := fmt.Sprintf("%s[%d]", long[:len(long)-8], i)
		if r.Match(name) {
			t.Fatalf("%q matched", name)
		}
	}
	if got, want := calls-setup, len(parsers)*fields; got != want {
		t.Errorf("checking %d names against %d: %d parser calls, want %d (one per parser and name)", fields, written, got, want)
	}
	if !r.Match("file42_key") || !r.Match("[file7.key]") || !r.Match("file3.key[x]") || !r.Match("doc_sha256") {
		t.Error("a reserved name did not match")
	}
}

// BenchmarkReservedMatch checks a 1000-field form of long bracketed names
// against 100 written names and two endings.
func BenchmarkReservedMatch(b *testing.B) {
	var r Reserved
	for i := range 100 {
		r.AddName(fmt.Sprintf("file%d.key", i))
	}
	r.AddEnding(".key")
	r.AddEnding(".sha256")
	long := "a" + strings.Repeat("[b]", (MaxNameBytes-1)/3)
	for b.Loop() {
		for range 1000 {
			r.Match(long)
		}
	}
}
