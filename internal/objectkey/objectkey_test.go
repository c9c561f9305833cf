package objectkey

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

func TestSanitizeFilename(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"plain", "report.pdf", "report.pdf"},
		{"windows path", `C:\Users\me\a.txt`, "a.txt"},
		{"unix traversal", "../../etc/passwd", "passwd"},
		{"windows traversal", `..\..\windows\win.ini`, "win.ini"},
		{"mixed separators", `a/b\c.txt`, "c.txt"},
		{"trailing separator", "dir/", "dir"},
		{"drive relative", "C:a.txt", "C_a.txt"},
		{"NUL", "a\x00b.txt", "ab.txt"},
		{"NUL extension trick", "file.txt\x00.jpg", "file.txt.jpg"},
		{"CRLF", "a\r\nb.txt", "ab.txt"},
		{"tab", "tab\there", "tabhere"},
		{"RTL override", "invoice\u202egnp.exe", "invoicegnp.exe"},
		{"zero width", "zero\u200bwidth.txt", "zerowidth.txt"},
		{"BOM", "\ufeffbom.txt", "bom.txt"},
		{"dot file", ".htaccess", "htaccess"},
		{"leading dots", "...hidden", "hidden"},
		{"leading spaces", "   spaced   ", "spaced"},
		{"trailing dots and spaces", "name. . .", "name"},
		{"trailing dot", "name.", "name"},
		{"reserved", "CON", "_CON"},
		{"reserved lowercase with extension", "con.txt", "_con.txt"},
		{"reserved double extension", "LPT1.tar.gz", "_LPT1.tar.gz"},
		{"reserved with space", "aux .log", "_aux .log"},
		{"not reserved", "CONSOLE.txt", "CONSOLE.txt"},
		{"NFD to NFC", "re\u0301sume\u0301.pdf", "r\u00e9sum\u00e9.pdf"},
		{"chinese", "中文文件.docx", "中文文件.docx"},
		{"cyrillic", "кириллица.txt", "кириллица.txt"},
		{"arabic digits kept", "ملف٣.txt", "ملف٣.txt"},
		{"emoji", "emoji 😀.png", "emoji_.png"},
		{"only emoji", "😀", "file"},
		{"only emoji with extension", "😀😀.png", "file.png"},
		{"shell and Windows specials", `a<b>c:d"e|f?g*h.txt`, "a_b_c_d_e_f_g_h.txt"},
		{"kept punctuation", "a-b_c (1)+d,e.txt", "a-b_c (1)+d,e.txt"},
		{"space run", "a   b.txt", "a b.txt"},
		{"space and underscore run", "a _ b.txt", "a_b.txt"},
		{"underscore run", "a___b", "a_b"},
		{"replaced run", "a<<>>b", "a_b"},
		{"no-break space", "no\u00a0break", "no break"},
		{"ideographic space", "a\u3000b", "a b"},
		{"fullwidth solidus is not a separator", "a\uff0fb", "a_b"},
		{"percent stays literal", "%2e%2e%2fx", "_2e_2e_2fx"},
		{"invalid UTF-8", "a\xffb", "a_b"},
		{"empty", "", "file"},
		{"dot", ".", "file"},
		{"dot dot", "..", "file"},
		{"slash", "/", "file"},
		{"only replaced", "<>", "file"},
		{"only replaced with extension", "<>.pdf", "file.pdf"},
		{"double extension", "foo.tar.gz", "foo.tar.gz"},
		{"leading dash kept", "-rf", "-rf"},
		{"ascii long", strings.Repeat("a", 300) + ".pdf", strings.Repeat("a", 196) + ".pdf"},
		{"two-byte long", strings.Repeat("é", 150), strings.Repeat("é", 100)},
		{"three-byte long with extension", strings.Repeat("中", 100) + ".txt", strings.Repeat("中", 65) + ".txt"},
		{"four-byte long", strings.Repeat("𝒜", 60), strings.Repeat("𝒜", 50)},
		{"long name, long extension", strings.Repeat("a", 250) + ".verylongextensionname", strings.Repeat("a", 200)},
		{"cut keeps marks with their letter", strings.Repeat("x", 198) + "q\u0301zz", strings.Repeat("x", 198)},
		{"cut does not leave a trailing dot", strings.Repeat("a", 199) + ".bbbb.verylongextensionname", strings.Repeat("a", 199)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := SanitizeFilename(tt.in); got != tt.want {
				t.Errorf("SanitizeFilename(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestExt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
	}{
		{"a.pdf", ".pdf"},
		{"a.PDF", ".pdf"},
		{"a.jpeg", ".jpeg"},
		{"a.7z", ".7z"},
		{"a.tar.gz", ".gz"},
		{"a", ""},
		{"a.", ""},
		{".htaccess", ""},
		{"../../x.sh", ".sh"},
		{`C:\dir.d\file`, ""},
		{"a.p df", ""},
		{"a.中文", ""},
		{"a.abcdefghijklmnop", ".abcdefghijklmnop"},
		{"a.abcdefghijklmnopq", ""},
		{"x\u202efdp.exe", ".exe"},
		{"x.exe\x00.png", ".png"},
		{"a.\u212a", ".k"}, // KELVIN SIGN is canonically equivalent to K; NFC makes it ASCII
		{"a.\u0130", ""},   // LATIN CAPITAL I WITH DOT ABOVE is not ASCII
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := Ext(tt.in); got != tt.want {
				t.Errorf("Ext(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestClean(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name    string
		prefix  string
		key     string
		want    string
		wantErr error
	}{
		{"plain", "uploads", "uploads/u1/2024/abc.pdf", "uploads/u1/2024/abc.pdf", nil},
		{"prefix with slash", "uploads/", "uploads/a", "uploads/a", nil},
		{"slashes and dots tidied", "/uploads/", "/uploads//a/./b/", "uploads/a/b", nil},
		{"backslashes", "uploads", `uploads\a\b`, "uploads/a/b", nil},
		{"whole bucket", "", "a/b", "a/b", nil},
		{"leading slash", "", "/a", "a", nil},
		{"deep prefix", "uploads/u1", "uploads/u1/x", "uploads/u1/x", nil},
		{"unicode", "uploads", "uploads/中文/é.txt", "uploads/中文/é.txt", nil},
		{"percent stays literal", "uploads", "uploads/%2e%2e/x", "uploads/%2e%2e/x", nil},
		{"control stripped", "uploads", "uploads/a\x00b\r\n", "uploads/ab", nil},
		{"format stripped", "uploads", "uploads/\u202eexe.pdf", "uploads/exe.pdf", nil},
		{"longest segment", "uploads", "uploads/" + long(255), "uploads/" + long(255), nil},
		{"dots inside a name", "uploads", "uploads/a..b/..c", "uploads/a..b/..c", nil},

		{"sibling prefix", "uploads", "uploads-evil/x", "", ErrOutsidePrefix},
		{"prefix itself", "uploads", "uploads", "", ErrOutsidePrefix},
		{"prefix itself with slash", "uploads", "uploads/", "", ErrOutsidePrefix},
		{"longer sibling", "uploads/u1", "uploads/u10/x", "", ErrOutsidePrefix},
		{"case matters", "uploads", "UPLOADS/x", "", ErrOutsidePrefix},
		{"other directory", "uploads", "secret/x", "", ErrOutsidePrefix},

		{"dot dot", "uploads", "uploads/../secret", "", ErrInvalidKey},
		{"climb past prefix", "uploads", "uploads/a/../../b", "", ErrInvalidKey},
		{"climb in whole bucket", "", "a/../../b", "", ErrInvalidKey},
		{"backslash dot dot", "uploads", `uploads\..\secret`, "", ErrInvalidKey},
		{"hidden by zero width", "uploads", "uploads/.\u200b./x", "", ErrInvalidKey},
		{"hidden by NUL", "uploads", "uploads/..\x00/x", "", ErrInvalidKey},
		{"three dots", "uploads", "uploads/.../x", "", ErrInvalidKey},
		{"dot dot space", "uploads", "uploads/.. /x", "", ErrInvalidKey},
		{"blank segment", "uploads", "uploads/ /x", "", ErrInvalidKey},
		{"empty", "", "", "", ErrInvalidKey},
		{"only dots and slashes", "", "/./", "", ErrInvalidKey},
		{"segment too long", "uploads", "uploads/" + long(256), "", ErrInvalidKey},
		{"key too long", "uploads", "uploads/" + strings.Repeat(long(200)+"/", 6), "", ErrInvalidKey},
		{"invalid UTF-8", "uploads", "uploads/a\xffb", "", ErrInvalidKey},
		{"bad prefix", "../x", "x/a", "", ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Clean(tt.prefix, tt.key)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Clean(%q, %q) error = %v, want %v", tt.prefix, tt.key, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Clean(%q, %q) error %v does not wrap ErrInvalidKey", tt.prefix, tt.key, err)
			}
			if got != tt.want {
				t.Errorf("Clean(%q, %q) = %q, want %q", tt.prefix, tt.key, got, tt.want)
			}
		})
	}
}

// TestHostileNames runs the corpus in testdata through both layers: every
// sanitised name is a valid file name and a valid key segment, and every raw
// value put under a prefix either fails or stays under it.
func TestHostileNames(t *testing.T) {
	t.Parallel()
	for _, name := range append(readCorpus(t, "testdata/traversal.txt"), longNames()...) {
		t.Run(strconv.Quote(name), func(t *testing.T) {
			t.Parallel()
			checkFilename(t, name)
			key := "uploads/" + name
			got, err := Clean("uploads", key)
			if err != nil {
				if !errors.Is(err, ErrInvalidKey) {
					t.Errorf("Clean(uploads, %q) error %v does not wrap ErrInvalidKey", key, err)
				}
				return
			}
			checkKey(t, "uploads", key, got)
		})
	}
}

// longNames are inputs near the length limit, too long to keep readable in
// the corpus file.
func longNames() []string {
	return []string{
		strings.Repeat("\u0301", 150),                         // only combining marks
		"a" + strings.Repeat("\u0301\u0323", 70) + ".txt",     // one letter, many marks
		strings.Repeat("\u1100\u1161", 80),                    // Hangul jamo that NFC composes
		strings.Repeat("\u1100\u1161\u200b", 60) + ".hwp",     // ... with format characters between
		strings.Repeat("ab.", 100),                            // ends with a dot after the cut
		strings.Repeat("a ", 150) + ".pdf",                    // space before the extension after the cut
		strings.Repeat("😀a", 60),                              // replaced characters around the cut
		strings.Repeat("../", 100) + strings.Repeat("x", 300), // long after a long path
		strings.Repeat("x", 195) + ".abcdefghijklmnop",        // longest extension
		"CON" + strings.Repeat(" ", 300) + ".txt",             // reserved name padded past the limit
	}
}

// readCorpus reads one Go-quoted string per line, skipping blank lines and
// lines starting with #.
func readCorpus(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := strconv.Unquote(line)
		if err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkFilename checks the invariants of SanitizeFilename(in).
func checkFilename(t testing.TB, in string) {
	t.Helper()
	got := SanitizeFilename(in)
	switch {
	case !utf8.ValidString(got):
		t.Fatalf("SanitizeFilename(%q) = %q: not valid UTF-8", in, got)
	case got == "" || got == "." || got == "..":
		t.Fatalf("SanitizeFilename(%q) = %q: empty or a dot name", in, got)
	case strings.ContainsAny(got, `/\`):
		t.Fatalf("SanitizeFilename(%q) = %q: contains a separator", in, got)
	case strings.IndexFunc(got, isControl) >= 0:
		t.Fatalf("SanitizeFilename(%q) = %q: contains a control or format character", in, got)
	case len(got) > MaxFilenameLen:
		t.Fatalf("SanitizeFilename(%q) = %q: %d bytes, longer than %d", in, got, len(got), MaxFilenameLen)
	case strings.HasPrefix(got, ".") || strings.HasPrefix(got, " "):
		t.Fatalf("SanitizeFilename(%q) = %q: leading dot or space", in, got)
	case strings.HasSuffix(got, ".") || strings.HasSuffix(got, " "):
		t.Fatalf("SanitizeFilename(%q) = %q: trailing dot or space", in, got)
	case !norm.NFC.IsNormalString(got):
		t.Fatalf("SanitizeFilename(%q) = %q: not NFC", in, got)
	case isReserved(got):
		t.Fatalf("SanitizeFilename(%q) = %q: a Windows device name", in, got)
	}
	if again := SanitizeFilename(got); again != got {
		t.Fatalf("SanitizeFilename not idempotent: %q -> %q -> %q", in, got, again)
	}
	if ext := Ext(in); ext != "" && (!strings.HasSuffix(strings.ToLower(got), ext) || !validExt(ext[1:])) {
		t.Fatalf("Ext(%q) = %q, not the extension of %q", in, ext, got)
	}
	// The first layer's output always passes the second.
	if _, err := Clean("uploads", "uploads/"+got); err != nil {
		t.Fatalf("Clean(uploads, uploads/%s) of a sanitised name: %v", got, err)
	}
}

// checkKey checks the invariants of got = Clean(prefix, key) when it
// succeeded.
func checkKey(t testing.TB, prefix, key, got string) {
	t.Helper()
	switch {
	case !utf8.ValidString(got):
		t.Fatalf("Clean(%q, %q) = %q: not valid UTF-8", prefix, key, got)
	case got == "" || strings.HasPrefix(got, "/"):
		t.Fatalf("Clean(%q, %q) = %q: empty or absolute", prefix, key, got)
	case len(got) > s3limits.MaxKeyLen:
		t.Fatalf("Clean(%q, %q) = %q: %d bytes, longer than %d", prefix, key, got, len(got), s3limits.MaxKeyLen)
	case strings.ContainsRune(got, '\\'):
		t.Fatalf("Clean(%q, %q) = %q: contains a backslash", prefix, key, got)
	case strings.IndexFunc(got, isControl) >= 0:
		t.Fatalf("Clean(%q, %q) = %q: contains a control or format character", prefix, key, got)
	}
	for seg := range strings.SplitSeq(got, "/") {
		if strings.Trim(seg, ". ") == "" || len(seg) > MaxSegmentLen {
			t.Fatalf("Clean(%q, %q) = %q: bad segment %q", prefix, key, got, seg)
		}
	}
	if p := naivePrefix(prefix); p != "" && !strings.HasPrefix(got, p+"/") {
		t.Fatalf("Clean(%q, %q) = %q: not under %q", prefix, key, got, p+"/")
	}
	if again, err := Clean(prefix, got); err != nil || again != got {
		t.Fatalf("Clean not idempotent: Clean(%q, %q) = %q, then %q, %v", prefix, key, got, again, err)
	}
}

// naivePrefix is the directory a prefix names, computed independently of
// Clean.
func naivePrefix(prefix string) string {
	var segs []string
	for seg := range strings.SplitSeq(strings.ReplaceAll(dropControl(prefix), `\`, "/"), "/") {
		if seg != "" && seg != "." {
			segs = append(segs, seg)
		}
	}
	return strings.Join(segs, "/")
}

func FuzzSanitizeFilename(f *testing.F) {
	for _, s := range readCorpus(f, "testdata/traversal.txt") {
		f.Add(s)
	}
	for _, s := range longNames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		checkFilename(t, name)
	})
}

func FuzzClean(f *testing.F) {
	for _, s := range readCorpus(f, "testdata/traversal.txt") {
		f.Add("uploads", "uploads/"+s)
		f.Add("", s)
	}
	f.Add("uploads/", "uploads-evil/x")
	f.Add("/a/./b", `a\b\c`)
	f.Fuzz(func(t *testing.T, prefix, key string) {
		got, err := Clean(prefix, key)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("Clean(%q, %q) error %v does not wrap ErrInvalidKey", prefix, key, err)
			}
			if got != "" {
				t.Fatalf("Clean(%q, %q) = %q with error %v", prefix, key, got, err)
			}
			return
		}
		checkKey(t, prefix, key, got)
	})
}

func TestEscapeSegment(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"alice", "alice"},
		{"zoë 中文", "zoë 中文"},
		{"victim/x", "victim%2Fx"},
		{"a/../b", "a%2F..%2Fb"},
		{`a\b`, "a%5Cb"},
		{"..", "%2E%2E"},
		{".", "%2E"},
		{". .", "%2E%20%2E"},
		{"...x", "...x"},
		{"50%", "50%25"},
		{"a\x00b\r\n", "a%00b%0D%0A"},
		{"a\u202eb", "a%E2%80%AEb"},
		{"\xff", "%FF"},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got := EscapeSegment(tt.in)
		if got != tt.want {
			t.Errorf("EscapeSegment(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("EscapeSegment(%q) = EscapeSegment(%q)", tt.in, prev)
		}
		seen[got] = tt.in
		if tt.in == "" {
			continue
		}
		if k, err := Clean("p", "p/"+got+"/f"); err != nil || k != "p/"+got+"/f" {
			t.Errorf("Clean(p/%s/f) = %q, %v: not one segment", got, k, err)
		}
	}
}
