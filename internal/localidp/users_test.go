package localidp

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// fakeClock is a clock that moves only when told to. It is safe for
// concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// newFakeClock returns a clock set to the current time, so that it agrees
// roughly with file modification times and with RotateDir, which uses the
// real clock.
func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Now().UTC().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// copyTestdata copies testdata/name into a new temporary directory and
// returns the copy's path, so that a test may change it.
func copyTestdata(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), filepath.Base(name))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// replaceFile writes data to path the way an operator should: to a new
// file renamed over the old one. The modification time is set to mtime.
func replaceFile(t *testing.T, path string, data string, mtime time.Time) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// loadTestUsers loads a copy of testdata/users/name driven by clock.
func loadTestUsers(t *testing.T, name string, clock *fakeClock) (*Users, string) {
	t.Helper()
	path := copyTestdata(t, filepath.Join("users", name))
	u, err := LoadUsers(path)
	if err != nil {
		t.Fatalf("LoadUsers(%s): %v", name, err)
	}
	u.now = clock.Now
	u.checked = clock.Now()
	return u, path
}

func TestLoadUsers(t *testing.T) {
	tests := []struct {
		file    string
		wantLen int
		wantMsg string // in the error; "" for no error
	}{
		{"valid.json", 3, ""},
		{"empty.json", 0, ""},
		{"bad-json.json", 0, "bad JSON"},
		{"trailing-data.json", 0, "data after the top-level object"},
		{"unknown-field.json", 0, `unknown field "passwordHash"`},
		{"no-users.json", 0, `no "users" list`},
		{"missing-email.json", 0, "user 1: email is missing"},
		{"not-an-email.json", 0, "user 1: \"Demo <demo@example.com>\" is not a plain email address"},
		{"duplicate-email.json", 0, `user 2: email "DEMO@example.com" is already used by user 1`},
		{"duplicate-sub.json", 0, `user 2 (b@example.com): sub "same" is already used by user 1`},
		{"missing-hash.json", 0, "user 2 (nohash@example.com): password_hash is missing"},
		{"not-bcrypt.json", 0, "user 1 (demo@example.com): password_hash is not a bcrypt hash"},
		{"argon2.json", 0, "argon2 hash; only bcrypt is supported"},
		{"bad-sub.json", 0, `sub "has space" contains spaces`},
		{"empty-group.json", 0, "empty group name"},
		{"cost-too-low.json", 0, "user 1 (demo@example.com): password_hash has bcrypt cost 4; accepted costs are 10 to 14"},
		{"cost-too-high.json", 0, "user 1 (demo@example.com): password_hash has bcrypt cost 15; accepted costs are 10 to 14"},
		{"negative-generation.json", 0, "token_generation is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			u, err := LoadUsers(filepath.Join("testdata", "users", tt.file))
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("LoadUsers: %v", err)
				}
				if got := len(u.byEmail); got != tt.wantLen {
					t.Errorf("%d users, want %d", got, tt.wantLen)
				}
				return
			}
			if !errors.Is(err, ErrInvalidUsersFile) {
				t.Fatalf("LoadUsers error = %v, want one wrapping ErrInvalidUsersFile", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("LoadUsers error = %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestLoadUsersMissingFile(t *testing.T) {
	_, err := LoadUsers(filepath.Join(t.TempDir(), "users.json"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadUsers of a missing file: %v, want one wrapping os.ErrNotExist", err)
	}
}

func TestUserFields(t *testing.T) {
	u, err := LoadUsers(filepath.Join("testdata", "users", "valid.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		email      string
		wantEmail  string
		wantSub    string
		wantGroups []string
	}{
		{"demo@example.com", "Demo@Example.com", DefaultSub("demo@example.com"), []string{"uploader"}},
		{"ops@example.com", "ops@example.com", "ops-0001", []string{"uploader", "admin"}},
		{"legacy@example.com", "legacy@example.com", DefaultSub("legacy@example.com"), nil},
	}
	for _, tt := range tests {
		got, ok := u.byEmail[tt.email]
		if !ok {
			t.Errorf("%s: not loaded", tt.email)
			continue
		}
		if got.Email != tt.wantEmail || got.Sub != tt.wantSub || !slices.Equal(got.Groups, tt.wantGroups) {
			t.Errorf("%s: got {%s %s %v}, want {%s %s %v}", tt.email,
				got.Email, got.Sub, got.Groups, tt.wantEmail, tt.wantSub, tt.wantGroups)
		}
	}
}

func TestDefaultSub(t *testing.T) {
	// UUIDv5(URL namespace, "mailto:demo@example.com") as Python's
	// uuid.uuid5(uuid.NAMESPACE_URL, ...) computes it, so that the derivation
	// cannot change unnoticed.
	const want = "b3ea47a7-e8f4-56fa-82da-cc9c6720b494"
	for _, email := range []string{"demo@example.com", "Demo@Example.COM", " demo@example.com "} {
		if got := DefaultSub(email); got != want {
			t.Errorf("DefaultSub(%q) = %s, want %s", email, got, want)
		}
	}
	if DefaultSub("other@example.com") == want {
		t.Errorf("DefaultSub gives two emails the same sub")
	}
}

func TestAuthenticate(t *testing.T) {
	u, _ := loadTestUsers(t, "valid.json", newFakeClock())
	// Count comparisons and remember the hash compared against.
	var compared [][]byte
	u.compare = func(hash, pw []byte) error {
		compared = append(compared, hash)
		return bcrypt.CompareHashAndPassword(hash, pw)
	}

	tests := []struct {
		name     string
		email    string
		password string
		wantSub  string // "" when ErrInvalidCredentials is expected
	}{
		{"ok", "demo@example.com", "correct horse", DefaultSub("demo@example.com")},
		{"email in other case", "DEMO@example.com", "correct horse", DefaultSub("demo@example.com")},
		{"email with spaces", " demo@example.com ", "correct horse", DefaultSub("demo@example.com")},
		{"explicit sub", "ops@example.com", "s3cret", "ops-0001"},
		{"base64 hash", "legacy@example.com", "hunter2", DefaultSub("legacy@example.com")},
		{"wrong password", "demo@example.com", "s3cret", ""},
		{"password in other case", "demo@example.com", "Correct Horse", ""},
		{"empty password", "demo@example.com", "", ""},
		{"unknown user", "nobody@example.com", "correct horse", ""},
		{"empty email", "", "correct horse", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			compared = nil
			user, err := u.Authenticate(tt.email, tt.password)
			if len(compared) != 1 {
				t.Fatalf("%d bcrypt comparisons, want 1 (unknown users must cost the same)", len(compared))
			}
			if cost, err := bcrypt.Cost(compared[0]); err != nil || cost != 10 {
				t.Errorf("compared against a hash of cost %d (%v), want 10 like the users' hashes", cost, err)
			}
			if tt.wantSub == "" {
				if !errors.Is(err, ErrInvalidCredentials) || user != nil {
					t.Errorf("Authenticate = %v, %v; want nil, ErrInvalidCredentials", user, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if user.Sub != tt.wantSub {
				t.Errorf("Sub = %q, want %q", user.Sub, tt.wantSub)
			}
		})
	}
}

func TestAuthenticateReturnsCopy(t *testing.T) {
	u, _ := loadTestUsers(t, "valid.json", newFakeClock())
	user, err := u.Authenticate("ops@example.com", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	user.Groups[0] = "changed"
	again, err := u.Authenticate("ops@example.com", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if again.Groups[0] != "uploader" {
		t.Errorf("changing a returned user changed the loaded one: groups %v", again.Groups)
	}
}

func TestDummyHashCost(t *testing.T) {
	tests := []struct {
		name  string
		costs map[int]int
		want  int
	}{
		{"no users", nil, HashCost},
		{"one cost", map[int]int{10: 3}, 10},
		{"most common", map[int]int{10: 1, 14: 5, 12: 2}, 14},
		{"tie takes higher", map[int]int{10: 2, 11: 2}, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := dummyHash(tt.costs)
			got, err := bcrypt.Cost(h)
			if err != nil || got != tt.want || len(h) != 60 {
				t.Errorf("dummyHash(%v) = %s, cost %d (%v); want a 60-byte hash of cost %d", tt.costs, h, got, err, tt.want)
			}
		})
	}
}

func TestUsersReload(t *testing.T) {
	clock := newFakeClock()
	u, path := loadTestUsers(t, "valid.json", clock)
	mtime := time.Now().Add(time.Hour) // differs from the copy's

	newUser := `{"users":[{"email":"new@example.com","password_hash":"$2a$10$x/3zjh9SHU7GoXPQxJmraOAfO2b3TGLxXnfZ7MlSMmtpdewNlCOWK"}]}`
	replaceFile(t, path, newUser, mtime)

	// Within a second of the last check the file is not looked at.
	clock.Advance(500 * time.Millisecond)
	if _, err := u.Authenticate("new@example.com", "s3cret"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("new user accepted before the check interval passed: %v", err)
	}

	clock.Advance(600 * time.Millisecond)
	if _, err := u.Authenticate("new@example.com", "s3cret"); err != nil {
		t.Errorf("new user after reload: %v", err)
	}
	if _, err := u.Authenticate("demo@example.com", "correct horse"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("removed user after reload: %v, want ErrInvalidCredentials", err)
	}

	// A broken file leaves the users in effect and is reported.
	replaceFile(t, path, `{"users": [`, mtime.Add(time.Hour))
	clock.Advance(2 * time.Second)
	if _, err := u.Authenticate("new@example.com", "s3cret"); err != nil {
		t.Errorf("user after a bad reload: %v", err)
	}
	if err := u.LastReloadError(); !errors.Is(err, ErrInvalidUsersFile) {
		t.Errorf("LastReloadError() = %v, want ErrInvalidUsersFile", err)
	}
	if err := u.Reload(); !errors.Is(err, ErrInvalidUsersFile) {
		t.Errorf("Reload() of an unchanged bad file = %v, want ErrInvalidUsersFile", err)
	}

	// Fixing it clears the error.
	replaceFile(t, path, newUser, mtime.Add(2*time.Hour))
	if err := u.Reload(); err != nil {
		t.Errorf("Reload() after fixing the file: %v", err)
	}
	if err := u.LastReloadError(); err != nil {
		t.Errorf("LastReloadError() after fixing the file: %v", err)
	}
}

func TestHashPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("bcrypt cost 12 takes a while")
	}
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost([]byte(h)); err != nil || cost != HashCost {
		t.Errorf("cost %d (%v), want %d", cost, err, HashCost)
	}
	if _, _, err := parseHash(h); err != nil {
		t.Errorf("the users file refuses HashPassword's hash: %v", err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(h), []byte("correct horse")); err != nil {
		t.Errorf("hash does not match its password: %v", err)
	}
	if _, err := HashPassword(strings.Repeat("x", 73)); err == nil {
		t.Errorf("HashPassword accepted a 73-byte password")
	}
}
