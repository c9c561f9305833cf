package policy_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
)

const (
	alice = "alice"
	bob   = "bob"
)

// TestAuthorizeMatrix checks every role × action of the default policy on
// the user's own file, another user's file and a key outside the prefix.
func TestAuthorizeMatrix(t *testing.T) {
	t.Parallel()
	p := policy.Default("files")
	ownKey := "files/users/alice/report.pdf"
	otherKey := "files/users/bob/report.pdf"
	outsideKey := "private/users/alice/report.pdf"

	tests := []struct {
		role                roles.Role
		action              policy.Action
		own, other, outside bool
	}{
		{roles.Admin, policy.Upload, true, true, false},
		{roles.Admin, policy.Download, true, true, false},
		{roles.Admin, policy.List, true, true, false},
		{roles.Admin, policy.Delete, true, true, false},
		{roles.Admin, policy.Manage, true, true, false},

		{roles.Uploader, policy.Upload, true, false, false},
		{roles.Uploader, policy.Download, true, false, false},
		{roles.Uploader, policy.List, true, false, false},
		{roles.Uploader, policy.Delete, true, false, false},
		{roles.Uploader, policy.Manage, true, false, false},

		{roles.Viewer, policy.Upload, false, false, false},
		{roles.Viewer, policy.Download, true, true, false},
		{roles.Viewer, policy.List, true, true, false},
		{roles.Viewer, policy.Delete, false, false, false},
		{roles.Viewer, policy.Manage, false, false, false},

		{roles.None, policy.Upload, false, false, false},
		{roles.None, policy.Download, false, false, false},
		{roles.None, policy.List, false, false, false},
		{roles.None, policy.Delete, false, false, false},
		{roles.None, policy.Manage, false, false, false},
	}
	for _, tt := range tests {
		for _, c := range []struct {
			name string
			key  string
			want bool
		}{{"own", ownKey, tt.own}, {"other", otherKey, tt.other}, {"outside", outsideKey, tt.outside}} {
			t.Run(fmt.Sprintf("%s/%s/%s", tt.role, tt.action, c.name), func(t *testing.T) {
				t.Parallel()
				err := p.Authorize(policy.Subject{ID: alice, Role: tt.role}, tt.action, c.key)
				if got := err == nil; got != c.want {
					t.Fatalf("Authorize(%s, %s, %q) = %v, want allowed=%v", tt.role, tt.action, c.key, err, c.want)
				}
				if err != nil && !errors.Is(err, policy.ErrDenied) {
					t.Errorf("error %v does not wrap ErrDenied", err)
				}
				if err != nil && strings.Contains(err.Error(), c.key) {
					t.Errorf("error %q names the key", err)
				}
			})
		}
	}
}

func TestAuthorizeDenies(t *testing.T) {
	t.Parallel()
	p := policy.Default("files/")
	admin := policy.Subject{ID: alice, Role: roles.Admin}
	uploader := policy.Subject{ID: alice, Role: roles.Uploader}
	tests := []struct {
		name   string
		s      policy.Subject
		action policy.Action
		key    string
	}{
		{"uploader deletes another user's file", uploader, policy.Delete, "files/users/bob/x"},
		{"uploader reads another user's file", uploader, policy.Download, "files/users/bob/x"},
		{"uploader writes into a longer id's prefix", uploader, policy.Upload, "files/users/alice2/x"},
		{"uploader writes next to the users folder", uploader, policy.Upload, "files/x"},
		{"viewer uploads", policy.Subject{ID: alice, Role: roles.Viewer}, policy.Upload, "files/users/alice/x"},
		{"empty id with scope own", policy.Subject{Role: roles.Uploader}, policy.Upload, "files/users/_/x"},
		{"unknown role", policy.Subject{ID: alice, Role: "root"}, policy.Download, "files/users/alice/x"},
		{"unknown action", admin, "rename", "files/x"},

		{"dot-dot out of own prefix", uploader, policy.Upload, "files/users/alice/../bob/x"},
		{"dot-dot out of base prefix", admin, policy.Download, "files/../secret"},
		{"trailing dot-dot", admin, policy.Download, "files/a/.."},
		{"dot segment", admin, policy.Download, "files/./x"},
		{"trailing dot segment", admin, policy.Download, "files/x/."},
		{"double slash", admin, policy.Upload, "files//x"},
		{"double slash in own prefix", uploader, policy.Upload, "files/users/alice//x"},
		{"leading slash", admin, policy.Upload, "/files/x"},
		{"NUL", admin, policy.Upload, "files/a\x00b"},
		{"newline", admin, policy.Upload, "files/a\nb"},
		{"DEL", admin, policy.Upload, "files/a\x7f"},
		{"C1 control", admin, policy.Upload, "files/a\u0085b"},
		{"invalid UTF-8", admin, policy.Upload, "files/a\xffb"},
		{"empty key", admin, policy.List, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := p.Authorize(tt.s, tt.action, tt.key)
			if !errors.Is(err, policy.ErrDenied) {
				t.Fatalf("Authorize(%+v, %s, %q) = %v, want ErrDenied", tt.s, tt.action, tt.key, err)
			}
			if tt.key != "" && strings.Contains(err.Error(), tt.key) {
				t.Errorf("error %q names the key", err)
			}
		})
	}
}

func TestAuthorizeAllows(t *testing.T) {
	t.Parallel()
	p := policy.Default("files/")
	tests := []struct {
		name   string
		p      policy.Policy
		s      policy.Subject
		action policy.Action
		key    string
	}{
		{"dots inside a name", p, policy.Subject{ID: alice, Role: roles.Uploader}, policy.Upload, "files/users/alice/a..b/...x"},
		{"escaped id", p, policy.Subject{ID: "a/b", Role: roles.Uploader}, policy.Upload, "files/users/a_2Fb/x"},
		{"unicode name", p, policy.Subject{ID: alice, Role: roles.Uploader}, policy.Upload, "files/users/alice/résumé.pdf"},
		{"admin anywhere under prefix", p, policy.Subject{ID: alice, Role: roles.Admin}, policy.Delete, "files/other/x"},
		{"whole bucket prefix", policy.Default(""), policy.Subject{ID: alice, Role: roles.Admin}, policy.Delete, "anything"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.p.Authorize(tt.s, tt.action, tt.key); err != nil {
				t.Fatalf("Authorize(%+v, %s, %q) = %v, want nil", tt.s, tt.action, tt.key, err)
			}
		})
	}
}

func TestDefaultPrefix(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"files", "files/"},
		{"files/", "files/"},
		{"a/b", "a/b/"},
		{"", ""},
	} {
		if got := policy.Default(tt.in).Prefix; got != tt.want {
			t.Errorf("Default(%q).Prefix = %q, want %q", tt.in, got, tt.want)
		}
	}
	// A hand-built Policy without the trailing slash behaves the same.
	p := policy.Policy{Prefix: "files", Roles: policy.Default("").Roles}
	if got, want := p.OwnerPrefix(alice), "files/users/alice/"; got != want {
		t.Errorf("OwnerPrefix = %q, want %q", got, want)
	}
	if err := p.Authorize(policy.Subject{ID: alice, Role: roles.Admin}, policy.Download, "filesystem/x"); !errors.Is(err, policy.ErrDenied) {
		t.Errorf("prefix \"files\" allowed \"filesystem/x\": %v", err)
	}
}

func TestDefaultIsFresh(t *testing.T) {
	t.Parallel()
	a := policy.Default("files/")
	a.Roles[roles.Viewer][policy.Upload] = policy.All
	if got := policy.Default("files/").ScopeOf(roles.Viewer, policy.Upload); got != policy.None {
		t.Errorf("changing one Default changed the next: viewer upload scope %s", got)
	}
}

func TestOwnerPrefix(t *testing.T) {
	t.Parallel()
	p := policy.Default("files/")
	tests := []struct{ id, want string }{
		{"alice", "files/users/alice/"},
		{"user@example.com", "files/users/user@example.com/"},
		{"2f1d-99ab.c", "files/users/2f1d-99ab.c/"},
		{"a/b", "files/users/a_2Fb/"},
		{"a_b", "files/users/a_5Fb/"},
		{"a_2Fb", "files/users/a_5F2_46b/"},
		{"..", "files/users/_2E./"},
		{".", "files/users/_2E/"},
		{"a..", "files/users/a../"},
		{"é", "files/users/_C3_A9/"},
		{"Alice", "files/users/_41lice/"},
		{"ALICE", "files/users/_41_4C_49_43_45/"},
		{"a b+c", "files/users/a_20b_2Bc/"},
		{"*?$", "files/users/_2A_3F_24/"},
		{"", "files/users/_/"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			t.Parallel()
			if got := p.OwnerPrefix(tt.id); got != tt.want {
				t.Errorf("OwnerPrefix(%q) = %q, want %q", tt.id, got, tt.want)
			}
		})
	}
}

// TestOwnerPrefixInjective checks that ids which a lossy sanitiser would
// merge, or which differ only in case, get distinct owner prefixes, none a
// prefix of another, even when compared without regard to case (as
// SeaweedFS matches session policy resources).
func TestOwnerPrefixInjective(t *testing.T) {
	t.Parallel()
	p := policy.Default("files/")
	ids := []string{
		"", "_", "__", "a", "a/b", "a_b", "a b", "a:b", "a_2Fb", "a_5Fb", "A/B",
		"A", ".", "..", "_2E", "_2E.", ".a", "_2Ea", "a.", "é", "_C3_A9", "\xc3",
		"alice", "alice2", "alice/", "alice_", "alice_2F", "\x00", "_00",
		"Alice", "ALICE", "aLiCe", "_41lice", "_61lice", "K", "\u212a", "k",
	}
	const alphabet = "aA_/.-2F5fé\x00"
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(6))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		ids = append(ids, string(b))
	}
	seen := map[string]string{}
	var prefixes []string
	for _, id := range ids {
		op := strings.ToLower(p.OwnerPrefix(id))
		if prev, ok := seen[op]; ok && prev != id {
			t.Fatalf("ids %q and %q share the owner prefix %q", prev, id, op)
		}
		if _, ok := seen[op]; !ok {
			prefixes = append(prefixes, op)
		}
		seen[op] = id
		if !policy.SafeKey(p.OwnerPrefix(id) + "x") {
			t.Errorf("OwnerPrefix(%q) = %q is not a safe key prefix", id, p.OwnerPrefix(id))
		}
	}
	for _, a := range prefixes {
		for _, b := range prefixes {
			if a != b && strings.HasPrefix(b, a) {
				t.Fatalf("owner prefix %q (id %q) is a prefix of %q (id %q)", a, seen[a], b, seen[b])
			}
		}
	}
}

// FuzzOwnerPrefix decodes the escaped segment, lowercased, back to the id,
// which proves the escaping injective, even where case is ignored, for
// every input the fuzzer finds.
func FuzzOwnerPrefix(f *testing.F) {
	for _, s := range []string{"", "a/b", "a_b", "..", "é", "_2F", "\x00", "Alice", "\u212a"} {
		f.Add(s)
	}
	p := policy.Default("files/")
	f.Fuzz(func(t *testing.T, id string) {
		op := p.OwnerPrefix(id)
		seg, ok := strings.CutPrefix(op, "files/users/")
		if !ok || !strings.HasSuffix(seg, "/") {
			t.Fatalf("OwnerPrefix(%q) = %q: not files/users/<seg>/", id, op)
		}
		seg = strings.TrimSuffix(seg, "/")
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "/*?$") {
			t.Fatalf("OwnerPrefix(%q) has segment %q", id, seg)
		}
		if id == "" {
			if seg != "_" {
				t.Fatalf("OwnerPrefix(\"\") segment = %q, want _", seg)
			}
			return
		}
		for i := 0; i < len(seg); i++ { // only escapes may hold capitals (hex digits)
			if seg[i] == '_' {
				i += 2
			} else if 'A' <= seg[i] && seg[i] <= 'Z' {
				t.Fatalf("OwnerPrefix(%q) segment %q keeps a capital letter", id, seg)
			}
		}
		got, err := unescape(strings.ToLower(seg))
		if err != nil {
			t.Fatalf("OwnerPrefix(%q) segment %q: %v", id, seg, err)
		}
		if got != id {
			t.Fatalf("OwnerPrefix(%q) segment %q decodes to %q", id, seg, got)
		}
	})
}

// unescape reverses the documented escaping of a lowercased segment.
func unescape(seg string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c == '_':
			if i+3 > len(seg) {
				return "", fmt.Errorf("short escape at %d", i)
			}
			v, err := strconv.ParseUint(seg[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("bad escape %q", seg[i:i+3])
			}
			b.WriteByte(byte(v))
			i += 2
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '@', c == '-':
			b.WriteByte(c)
		case c == '.' && i > 0:
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("unexpected byte %q at %d", c, i)
		}
	}
	return b.String(), nil
}

func TestListPrefix(t *testing.T) {
	t.Parallel()
	p := policy.Default("files/")
	tests := []struct {
		name    string
		s       policy.Subject
		wantAll bool
		want    string
		denied  bool
	}{
		{"admin own", policy.Subject{ID: alice, Role: roles.Admin}, false, "files/users/alice/", false},
		{"admin all", policy.Subject{ID: alice, Role: roles.Admin}, true, "files/", false},
		{"uploader own", policy.Subject{ID: alice, Role: roles.Uploader}, false, "files/users/alice/", false},
		{"uploader all", policy.Subject{ID: alice, Role: roles.Uploader}, true, "", true},
		{"viewer all", policy.Subject{ID: alice, Role: roles.Viewer}, true, "files/", false},
		{"none own", policy.Subject{ID: alice, Role: roles.None}, false, "", true},
		{"none all", policy.Subject{ID: alice, Role: roles.None}, true, "", true},
		{"uploader without id", policy.Subject{Role: roles.Uploader}, false, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := p.ListPrefix(tt.s, tt.wantAll)
			if tt.denied {
				if !errors.Is(err, policy.ErrDenied) {
					t.Fatalf("ListPrefix(%+v, %v) = %q, %v; want ErrDenied", tt.s, tt.wantAll, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ListPrefix(%+v, %v) = %q, %v; want %q", tt.s, tt.wantAll, got, err, tt.want)
			}
		})
	}
}

func TestGrants(t *testing.T) {
	t.Parallel()
	p := policy.Default("files/")
	mixed := policy.Policy{Prefix: "files/", Roles: map[roles.Role]policy.Rules{
		roles.Uploader: {policy.Upload: policy.Own, policy.Download: policy.All, policy.List: policy.All, policy.Delete: policy.Own},
	}}
	all := []policy.Action{policy.Upload, policy.Download, policy.List, policy.Delete, policy.Manage}
	tests := []struct {
		name string
		p    policy.Policy
		s    policy.Subject
		want []policy.Grant
	}{
		{"admin", p, policy.Subject{ID: alice, Role: roles.Admin}, []policy.Grant{{Prefix: "files/", Actions: all}}},
		{"uploader", p, policy.Subject{ID: alice, Role: roles.Uploader}, []policy.Grant{{Prefix: "files/users/alice/", Actions: all}}},
		{"viewer", p, policy.Subject{ID: alice, Role: roles.Viewer}, []policy.Grant{{Prefix: "files/", Actions: []policy.Action{policy.Download, policy.List}}}},
		{"none", p, policy.Subject{ID: alice, Role: roles.None}, nil},
		{"uploader without id", p, policy.Subject{Role: roles.Uploader}, nil},
		{"mixed scopes", mixed, policy.Subject{ID: "a/b", Role: roles.Uploader}, []policy.Grant{
			{Prefix: "files/", Actions: []policy.Action{policy.Download, policy.List}},
			{Prefix: "files/users/a_2Fb/", Actions: []policy.Action{policy.Upload, policy.Delete}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.p.Grants(tt.s); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Grants(%+v) = %+v, want %+v", tt.s, got, tt.want)
			}
		})
	}
}

func TestParseRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		spec    map[string]map[string]string
		want    map[roles.Role]policy.Rules
		wantErr error // nil: no error; errAny: any error
	}{
		{
			name: "valid",
			spec: map[string]map[string]string{
				"uploader": {"upload": "own", "delete": "own", "list": "none"},
				"viewer":   {"download": "all", "list": ""},
				"none":     {},
			},
			want: map[roles.Role]policy.Rules{
				roles.Uploader: {policy.Upload: policy.Own, policy.Delete: policy.Own, policy.List: policy.None},
				roles.Viewer:   {policy.Download: policy.All, policy.List: policy.None},
				roles.None:     {},
			},
		},
		{name: "empty", spec: nil, want: map[roles.Role]policy.Rules{}},
		{name: "unknown role", spec: map[string]map[string]string{"root": {"upload": "all"}}, wantErr: roles.ErrUnknownRole},
		{name: "role in capitals", spec: map[string]map[string]string{"Admin": {"upload": "all"}}, wantErr: roles.ErrUnknownRole},
		{name: "unknown action", spec: map[string]map[string]string{"admin": {"rename": "all"}}, wantErr: errAny},
		{name: "action in capitals", spec: map[string]map[string]string{"admin": {"Upload": "all"}}, wantErr: errAny},
		{name: "unknown scope", spec: map[string]map[string]string{"admin": {"upload": "everything"}}, wantErr: errAny},
		{name: "none twice", spec: map[string]map[string]string{"none": {}, "": {}}, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := policy.ParseRules(tt.spec)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("ParseRules: %v", err)
			case tt.wantErr == errAny && err == nil, tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("ParseRules = %v, %v; want error %v", got, err, tt.wantErr)
			}
			if tt.wantErr == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseRules = %v, want %v", got, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")

// A scope of none in configuration takes the action away from the default
// policy, in Authorize, ListPrefix and Grants (the STS session policy).
func TestOverrideWithNoneRemovesTheAction(t *testing.T) {
	t.Parallel()
	rules, err := policy.ParseRules(map[string]map[string]string{
		"viewer":   {"download": "none"},
		"uploader": {"delete": "none", "list": "all"},
	})
	if err != nil {
		t.Fatal(err)
	}
	def := policy.Default("files/")
	p := def.Override(rules)
	viewer := policy.Subject{ID: "v", Role: roles.Viewer}
	uploader := policy.Subject{ID: "u", Role: roles.Uploader}

	tests := []struct {
		name    string
		s       policy.Subject
		a       policy.Action
		key     string
		wantErr bool
	}{
		{"viewer download removed", viewer, policy.Download, "files/users/u/x/a.txt", true},
		{"uploader delete removed", uploader, policy.Delete, "files/users/u/x/a.txt", true},
		{"uploader keeps upload", uploader, policy.Upload, "files/users/u/x/a.txt", false},
		{"uploader keeps download", uploader, policy.Download, "files/users/u/x/a.txt", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := p.Authorize(tt.s, tt.a, tt.key)
			if (err != nil) != tt.wantErr {
				t.Errorf("Authorize = %v, want error %v", err, tt.wantErr)
			}
		})
	}
	if _, err := p.ListPrefix(viewer, true); err != nil {
		t.Errorf("viewer list all: %v", err)
	}
	if _, err := p.ListPrefix(uploader, true); err != nil {
		t.Errorf("uploader list all (widened): %v", err)
	}
	for _, g := range p.Grants(viewer) {
		if slices.Contains(g.Actions, policy.Download) {
			t.Errorf("viewer grants %+v still hold download", p.Grants(viewer))
		}
	}
	for _, g := range p.Grants(uploader) {
		if slices.Contains(g.Actions, policy.Delete) {
			t.Errorf("uploader grants %+v still hold delete", p.Grants(uploader))
		}
	}
	if err := p.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if def.ScopeOf(roles.Viewer, policy.Download) != policy.All {
		t.Errorf("Override changed the policy it was called on")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		p       policy.Policy
		wantErr bool
	}{
		{"default", policy.Default("files/"), false},
		{"whole bucket", policy.Default(""), false},
		{"zero", policy.Policy{}, false},
		{"leading slash", policy.Default("/files"), true},
		{"dot-dot", policy.Default("files/../x"), true},
		{"double slash", policy.Default("a//b"), true},
		{"role none spelled out", policy.Policy{Roles: map[roles.Role]policy.Rules{"none": {}}}, true},
		{"unknown role", policy.Policy{Roles: map[roles.Role]policy.Rules{"root": {}}}, true},
		{"unknown action", policy.Policy{Roles: map[roles.Role]policy.Rules{roles.Admin: {"rename": policy.All}}}, true},
		{"unknown scope", policy.Policy{Roles: map[roles.Role]policy.Rules{roles.Admin: {policy.Upload: "some"}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.p.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestScopeString(t *testing.T) {
	t.Parallel()
	for s, want := range map[policy.Scope]string{policy.None: "none", policy.Own: "own", policy.All: "all"} {
		if got := s.String(); got != want {
			t.Errorf("Scope(%q).String() = %q, want %q", string(s), got, want)
		}
	}
}
