package formstream

import (
	"regexp"
	"slices"
	"strings"
)

// A form field name is not always read as written. The gateway forwards
// names unchanged, but the application behind it may parse them with rules
// of its own:
//
//   - Go's net/http (and most parsers): the name as is.
//   - PHP ($_POST): leading spaces are dropped, the name ends at a NUL, "."
//     and " " become "_" before the first "[", "a[b][c]" is the nested key
//     ['a']['b']['c'] (text after a "]" that does not open another "[" is
//     ignored), a "[" without a matching "]" becomes "_" (and so do " ", "."
//     and "[" after it), and a name with nothing before its first "[" is
//     dropped.
//   - Rack (Rails): "a[b]" is nested as in PHP; Rack 2 also drops leading
//     "[" and "]" ("[a]" is "a"), Rack 3 splits at the first "[" after the
//     first character.
//
// [SameField] and [EndsLike] compare names under each of these rules, so
// that a client cannot send a field that one of them reads as a field the
// gateway writes.

// parsers read a field name as the path of keys of the value it sets
// ($_POST['a']['b'] is ["a", "b"]); nil when the field is dropped.
var parsers = []func(string) []string{
	func(n string) []string { return []string{n} }, // Go
	phpPath,
	rack2Path,
	rack3Path,
}

// SameField reports whether some parser reads a and b as the same value, or
// one as a value nested in the other ("a_b" and "a.b" for PHP; "a" and
// "a[b]" for PHP and Rack).
func SameField(a, b string) bool {
	for _, parse := range parsers {
		pa, pb := parse(a), parse(b)
		if len(pa) == 0 || len(pb) == 0 {
			continue
		}
		n := min(len(pa), len(pb))
		if slices.Equal(pa[:n], pb[:n]) {
			return true
		}
	}
	return false
}

// EndsLike reports whether some parser reads name as something that ends
// the way it reads suffix written after other text: "api_key" ends like
// ".key" for PHP, which reads "api.key" as "api_key". It is how a name is
// checked against a template such as "{upload.field}.key".
func EndsLike(name, suffix string) bool {
	if suffix == "" {
		return false
	}
	for _, parse := range parsers {
		pn, ps := parse(name), parse("x"+suffix)
		if len(pn) == 0 || len(ps) == 0 {
			continue
		}
		s, ok := strings.CutPrefix(joinPath(ps), "x")
		if ok && s != "" && strings.HasSuffix(joinPath(pn), s) {
			return true
		}
	}
	return false
}

// joinPath writes a path back as a name: "a[b][c]".
func joinPath(p []string) string {
	var b strings.Builder
	b.WriteString(p[0])
	for _, k := range p[1:] {
		b.WriteString("[" + k + "]")
	}
	return b.String()
}

// phpPath reads a name as php_register_variable_ex does (PHP 8).
func phpPath(name string) []string {
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	name = strings.TrimLeft(name, " ")
	var top strings.Builder
	i := 0
	for ; i < len(name) && name[i] != '['; i++ {
		c := name[i]
		if c == ' ' || c == '.' {
			c = '_'
		}
		top.WriteByte(c)
	}
	if top.Len() == 0 {
		return nil
	}
	if i == len(name) {
		return []string{top.String()}
	}
	if !strings.Contains(name[i+1:], "]") {
		rest := strings.Map(func(r rune) rune {
			if r == ' ' || r == '.' || r == '[' {
				return '_'
			}
			return r
		}, name[i+1:])
		return []string{top.String() + "_" + rest}
	}
	path := []string{top.String()}
	for rest := name[i:]; strings.HasPrefix(rest, "["); {
		j := strings.IndexByte(rest, ']')
		if j < 0 {
			break
		}
		path = append(path, rest[1:j])
		rest = rest[j+1:]
	}
	return path
}

var rack2Key = regexp.MustCompile(`\A[\[\]]*([^\[\]]+)\]*`)

// rack2Path reads a name as Rack 2's normalize_params does.
func rack2Path(name string) []string {
	var path []string
	for name != "" {
		m := rack2Key.FindStringSubmatchIndex(name)
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

// rack3Path reads a name as Rack 3's _normalize_params does.
func rack3Path(name string) []string {
	var path []string
	for depth := 0; ; depth++ {
		var k, after string
		switch {
		case depth == 0:
			k = name
			if i := strings.IndexByte(name[min(1, len(name)):], '['); i >= 0 {
				k, after = name[:i+1], name[i+1:]
			}
		case strings.HasPrefix(name, "[]"):
			k, after = "", name[2:]
		case strings.HasPrefix(name, "[") && strings.Contains(name[1:], "]"):
			j := strings.IndexByte(name[1:], ']') + 1
			k, after = name[1:j], name[j+1:]
		default:
			k = name
		}
		if k == "" && (depth == 0 || !strings.HasPrefix(name, "[]")) {
			return path
		}
		switch after {
		case "":
			return append(path, k)
		case "[":
			return append(path, name)
		}
		path = append(path, k)
		name = after
	}
}
