package formstream

import (
	"slices"
	"strconv"
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
// gateway writes; [Reserved] checks a name against many at once.

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
	var r Reserved
	r.AddName(b)
	return r.Match(a)
}

// EndsLike reports whether some parser reads name as something that ends
// the way it reads suffix written after other text: "api_key" ends like
// ".key" for PHP, which reads "api.key" as "api_key". It is how a name is
// checked against a template such as "{upload.field}.key".
func EndsLike(name, suffix string) bool {
	var r Reserved
	r.AddEnding(suffix)
	return r.Match(name)
}

// Reserved is a set of field names and name endings, each read once by
// every parser when it is added, so that checking a name against all of
// them costs one reading of the name per parser and a few map look-ups,
// however many names the set holds. Its zero value is an empty set; it is
// not safe for concurrent use.
type Reserved struct {
	sets    [4]pathSet // one per parser, in the order of parsers
	endings [4][]string
}

// pathSet holds paths as one parser reads them.
type pathSet struct {
	full     map[string]bool // every path, encoded
	prefixes map[string]bool // every prefix of every path (whole ones too), encoded
	depth    int             // the longest path
}

// AddName reserves name: [Reserved.Match] then reports the names
// [SameField] would report for it.
func (r *Reserved) AddName(name string) {
	for i, parse := range parsers {
		p := parse(name)
		if len(p) == 0 {
			continue
		}
		s := &r.sets[i]
		if s.full == nil {
			s.full, s.prefixes = map[string]bool{}, map[string]bool{}
		}
		enc, ends := encodePath(p, len(p))
		s.full[enc] = true
		for _, e := range ends {
			s.prefixes[enc[:e]] = true
		}
		s.depth = max(s.depth, len(p))
	}
}

// AddEnding reserves the names that end like suffix: [Reserved.Match] then
// reports the names [EndsLike] would report for it.
func (r *Reserved) AddEnding(suffix string) {
	if suffix == "" {
		return
	}
	for i, parse := range parsers {
		ps := parse("x" + suffix)
		if len(ps) == 0 {
			continue
		}
		if s, ok := strings.CutPrefix(joinPath(ps), "x"); ok && s != "" {
			r.endings[i] = append(r.endings[i], s)
		}
	}
}

// Match reports whether some parser reads name as a reserved name, as a
// value nested in one or holding one, or as a name with a reserved ending.
func (r *Reserved) Match(name string) bool {
	for i, parse := range parsers {
		s, endings := &r.sets[i], r.endings[i]
		if s.depth == 0 && len(endings) == 0 {
			continue
		}
		p := parse(name)
		if len(p) == 0 {
			continue
		}
		if s.depth > 0 {
			// Only prefixes as deep as the longest reserved path can match.
			enc, ends := encodePath(p, s.depth)
			if len(p) <= s.depth && s.prefixes[enc] {
				return true // name's path is, or holds, a reserved one
			}
			for _, e := range ends {
				if s.full[enc[:e]] {
					return true // a reserved path holds name's
				}
			}
		}
		if len(endings) > 0 {
			joined := joinPath(p)
			if slices.ContainsFunc(endings, func(e string) bool { return strings.HasSuffix(joined, e) }) {
				return true
			}
		}
	}
	return false
}

// encodePath writes the first n keys of a path as one string, each key as
// "<length>:<key>", so that different paths never share an encoding and the
// encoding of a prefix is a prefix of the encoding. ends are the offsets at
// which each of those keys ends.
func encodePath(p []string, n int) (enc string, ends []int) {
	var b strings.Builder
	ends = make([]int, 0, min(n, len(p)))
	for _, k := range p[:min(n, len(p))] {
		b.WriteString(strconv.Itoa(len(k)))
		b.WriteByte(':')
		b.WriteString(k)
		ends = append(ends, b.Len())
	}
	return b.String(), ends
}

// joinPath writes a path back as a name: "a[b][c]".
func joinPath(p []string) string {
	if len(p) == 1 {
		return p[0]
	}
	return p[0] + "[" + strings.Join(p[1:], "][") + "]"
}

// phpPath reads a name as php_register_variable_ex does (PHP 8).
func phpPath(name string) []string {
	name, _, _ = strings.Cut(name, "\x00")
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

// rack2Path reads a name as Rack 2's normalize_params does: each step takes
// the key matched by /\A[\[\]]*([^\[\]]+)\]*/ and goes on after the match.
func rack2Path(name string) []string {
	var path []string
	for name != "" {
		i := 0
		for i < len(name) && (name[i] == '[' || name[i] == ']') {
			i++
		}
		j := i
		for j < len(name) && name[j] != '[' && name[j] != ']' {
			j++
		}
		if j == i {
			break // no key left
		}
		e := j
		for e < len(name) && name[e] == ']' {
			e++
		}
		k, after := name[i:j], name[e:]
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
