package rolecreds_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/rolecreds"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
)

var update = flag.Bool("update", false, "rewrite testdata/*.json")

const kmsKey = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

func TestSessionPolicyGolden(t *testing.T) {
	t.Parallel()
	mixed := policy.Policy{Prefix: "files/", Roles: map[roles.Role]policy.Rules{
		roles.Uploader: {policy.Upload: policy.Own, policy.Download: policy.All, policy.List: policy.All, policy.Manage: policy.Own},
	}}
	grants := func(p policy.Policy, id string, r roles.Role) []policy.Grant {
		return p.Grants(policy.Subject{ID: id, Role: r})
	}
	tests := []struct {
		golden string
		s      rolecreds.Session
	}{
		{"uploader", rolecreds.Session{Bucket: "uploads", Grants: grants(pol, "alice", roles.Uploader)}},
		{"uploader-escaped-id", rolecreds.Session{Bucket: "uploads", Grants: grants(pol, "Bob/Smith", roles.Uploader)}},
		{"uploader-kms", rolecreds.Session{Bucket: "uploads", KMSKeyARN: kmsKey, Grants: grants(pol, "alice", roles.Uploader)}},
		{"viewer", rolecreds.Session{Bucket: "uploads", Grants: grants(pol, "alice", roles.Viewer)}},
		{"viewer-kms", rolecreds.Session{Bucket: "uploads", KMSKeyARN: kmsKey, Grants: grants(pol, "alice", roles.Viewer)}},
		{"admin", rolecreds.Session{Bucket: "uploads", Grants: grants(pol, "alice", roles.Admin)}},
		{"admin-whole-bucket", rolecreds.Session{Bucket: "uploads", Grants: grants(policy.Default(""), "alice", roles.Admin)}},
		{"mixed-scopes", rolecreds.Session{Bucket: "uploads", Grants: grants(mixed, "alice", roles.Uploader)}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			got, err := tt.s.Policy()
			if err != nil {
				t.Fatalf("Policy: %v", err)
			}
			if tt.s.KMSKeyARN == "" {
				plain, err := rolecreds.SessionPolicy(tt.s.Bucket, tt.s.Grants)
				if err != nil || plain != got {
					t.Errorf("SessionPolicy = %q, %v; want Session.Policy's %q", plain, err, got)
				}
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, []byte(got)); err != nil {
				t.Fatalf("policy is not JSON: %v\n%s", err, got)
			}
			if compact.String() != got {
				t.Errorf("policy is not packed:\n%s", got)
			}
			path := filepath.Join("testdata", tt.golden+".json")
			if *update {
				var indented bytes.Buffer
				if err := json.Indent(&indented, []byte(got), "", "  "); err != nil {
					t.Fatal(err)
				}
				indented.WriteByte('\n')
				if err := os.WriteFile(path, indented.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := readGolden(t, path)
			if got != want {
				t.Errorf("policy differs from %s (run go test -update to accept):\ngot  %s\nwant %s", path, got, want)
			}
			t.Logf("%d bytes", len(got))
		})
	}
}

// readGolden returns the golden file at path, packed.
func readGolden(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file: %v", err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return compact.String()
}

func TestSessionPolicyErrors(t *testing.T) {
	t.Parallel()
	ok := []policy.Grant{{Prefix: "files/", Actions: []policy.Action{policy.Download}}}
	tests := []struct {
		name    string
		bucket  string
		grants  []policy.Grant
		wantErr error // errAny: any error
	}{
		{"no bucket", "", ok, errAny},
		{"bucket with wildcard", "up*", ok, errAny},
		{"bucket with slash", "uploads/files", ok, errAny},
		{"no grants", "uploads", nil, errAny},
		{"grant without actions", "uploads", []policy.Grant{{Prefix: "files/"}}, errAny},
		{"star in prefix", "uploads", []policy.Grant{{Prefix: "files/*/", Actions: []policy.Action{policy.Download}}}, errAny},
		{"question mark in prefix", "uploads", []policy.Grant{{Prefix: "files/?/", Actions: []policy.Action{policy.Download}}}, errAny},
		{"policy variable in prefix", "uploads", []policy.Grant{{Prefix: "files/${aws:username}/", Actions: []policy.Action{policy.Download}}}, errAny},
		{"unknown action", "uploads", []policy.Grant{{Prefix: "files/", Actions: []policy.Action{"rename"}}}, errAny},
		{"too large", "uploads", []policy.Grant{{Prefix: "files/" + strings.Repeat("x", 1000) + "/", Actions: []policy.Action{policy.Upload, policy.List}}}, rolecreds.ErrPolicyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := rolecreds.SessionPolicy(tt.bucket, tt.grants)
			if err == nil || (tt.wantErr != errAny && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("SessionPolicy = %q, %v; want error %v", got, err, tt.wantErr)
			}
		})
	}
}

var errAny = errors.New("any error")

// TestSessionPolicyFitsLongIDs checks how long a user id may be before an
// uploader's policy hits the limit (the package doc promises several
// hundred bytes).
func TestSessionPolicyFitsLongIDs(t *testing.T) {
	t.Parallel()
	for _, n := range []int{100, 300, 500} {
		id := strings.Repeat("a", n)
		s := rolecreds.Session{Bucket: "uploads", KMSKeyARN: kmsKey, Grants: pol.Grants(policy.Subject{ID: id, Role: roles.Uploader})}
		if got, err := s.Policy(); err != nil {
			t.Errorf("uploader with a %d-byte id: %v", n, err)
		} else {
			t.Logf("uploader with a %d-byte id: %d bytes", n, len(got))
		}
	}
}

func TestSessionName(t *testing.T) {
	t.Parallel()
	tests := []struct{ id, want string }{
		{"alice", "alice"},
		{"user@example.com", "user@example.com"},
		{"a_b+c,d.e@f-g", "a_b+c,d.e@f-g"},
		{"2f1d0e5c-5b8f-4a3e-9c1a-0d9e8f7a6b5c", "2f1d0e5c-5b8f-4a3e-9c1a-0d9e8f7a6b5c"},
		{"a/b", "a=2Fb"},
		{"a=b", "a=3Db"},
		{"a b", "a=20b"},
		{"é", "=C3=A9"},
		{"ab", "ab"},
		{strings.Repeat("x", 64), strings.Repeat("x", 64)},
		// Too short or too long: shortened with a hash.
		{"a", "a==" + nameHash("a")},
		{"", "==" + nameHash("")},
		{strings.Repeat("x", 65), strings.Repeat("x", 38) + "==" + nameHash(strings.Repeat("x", 65))},
		{strings.Repeat("/", 30), strings.Repeat("=2F", 13)[:38] + "==" + nameHash(strings.Repeat("/", 30))},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			t.Parallel()
			if got := rolecreds.SessionName(tt.id); got != tt.want {
				t.Errorf("SessionName(%q) = %q, want %q", tt.id, got, tt.want)
			}
		})
	}
}

// nameHash is the documented hash part of a shortened session name: the
// first 24 characters of the unpadded base32 SHA-256 of the id.
func nameHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:])[:24]
}

var sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

func TestSessionNameValidAndDistinct(t *testing.T) {
	t.Parallel()
	ids := []string{"", "a", "aa", "a/b", "a_b", "a=2Fb", "a==", "é", "=C3=A9",
		strings.Repeat("x", 64), strings.Repeat("x", 65), strings.Repeat("x", 66),
		strings.Repeat("x", 38) + "==", strings.Repeat("/", 22), strings.Repeat("/", 21) + "x"}
	r := rand.New(rand.NewPCG(3, 4))
	const alphabet = "aZ_=/.é@ "
	for range 5000 {
		b := make([]byte, r.IntN(90))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		ids = append(ids, string(b))
	}
	seen := map[string]string{}
	for _, id := range ids {
		name := rolecreds.SessionName(id)
		if !sessionNameRE.MatchString(name) {
			t.Errorf("SessionName(%q) = %q: not [\\w+=,.@-]{2,64}", id, name)
		}
		if prev, ok := seen[name]; ok && prev != id {
			t.Fatalf("SessionName(%q) = SessionName(%q) = %q", prev, id, name)
		}
		seen[name] = id
	}
	if len(seen) < 1000 {
		t.Fatalf("only %d distinct ids tested", len(seen))
	}
}
