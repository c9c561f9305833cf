package localidp

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// openTestKeyStore opens a key store in a new directory below a temporary
// one, driven by clock.
func openTestKeyStore(t *testing.T, clock *fakeClock) (*KeyStore, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	ks, err := openKeyStoreWithKey(dir, clock.Now)
	if err != nil {
		t.Fatalf("OpenKeyStore: %v", err)
	}
	return ks, dir
}

// openKeyStoreWithKey opens dir with the clock now and makes sure it holds
// a key.
func openKeyStoreWithKey(dir string, now func() time.Time) (*KeyStore, error) {
	ks, err := openKeyStore(dir, now)
	if err != nil {
		return nil, err
	}
	if _, err := ks.Current(); err != nil {
		return nil, err
	}
	return ks, nil
}

// currentKid returns the kid of ks's current key.
func currentKid(t *testing.T, ks *KeyStore) string {
	t.Helper()
	k, err := ks.Current()
	if err != nil {
		t.Fatalf("Current: %v", err)
	}
	return k.KeyID()
}

// publicKids returns the kids of ks's public set, in order.
func publicKids(t *testing.T, ks *KeyStore) []string {
	t.Helper()
	set := ks.PublicSet()
	var kids []string
	for i := range set.Len() {
		k, _ := set.Key(i)
		kids = append(kids, k.KeyID())
	}
	return kids
}

// keyFiles returns the names of the files in dir.
func keyFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// addTestdataKey copies testdata/keys/name into dir.
func addTestdataKey(t *testing.T, dir, name string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "keys", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestOpenKeyStoreCreates(t *testing.T) {
	ks, dir := openTestKeyStore(t, newFakeClock())

	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("directory mode %v, want 0700", perm)
	}
	files := keyFiles(t, dir)
	kid := currentKid(t, ks)
	if want := []string{kid + ".jwk.json"}; !slices.Equal(files, want) {
		t.Fatalf("files %v, want %v", files, want)
	}
	info, err = os.Stat(filepath.Join(dir, files[0]))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %v, want 0600", perm)
	}

	// The file is a private JWK with kid, alg, use and created_at.
	data, err := os.ReadFile(filepath.Join(dir, files[0]))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kty", "crv", "x", "y", "d", "kid", "alg", "use", "created_at"} {
		if _, ok := m[name]; !ok {
			t.Errorf("key file has no %q: %s", name, data)
		}
	}
	if m["crv"] != "P-256" || m["alg"] != "ES256" || m["use"] != "sig" || m["kid"] != kid {
		t.Errorf("key file: %s", data)
	}
}

func TestPublicSetAndJWKS(t *testing.T) {
	ks, _ := openTestKeyStore(t, newFakeClock())
	if _, err := ks.Rotate(); err != nil {
		t.Fatal(err)
	}

	set := ks.PublicSet()
	if set.Len() != 2 {
		t.Fatalf("PublicSet has %d keys, want 2", set.Len())
	}
	for i := range set.Len() {
		k, _ := set.Key(i)
		if private, err := jwk.IsPrivateKey(k); err != nil || private {
			t.Errorf("key %d is private (%v)", i, err)
		}
		if k.Algorithm() != jwa.ES256 || k.KeyUsage() != "sig" || k.KeyID() == "" {
			t.Errorf("key %d: alg %v, use %q, kid %q; want ES256, sig and a kid", i, k.Algorithm(), k.KeyUsage(), k.KeyID())
		}
		if _, ok := k.Get("created_at"); ok {
			t.Errorf("key %d publishes created_at", i)
		}
	}
	if k, _ := set.Key(0); k.KeyID() != currentKid(t, ks) {
		t.Errorf("first public key %s, want the current one %s", k.KeyID(), currentKid(t, ks))
	}

	// Changing the returned set does not change the store.
	k, _ := set.Key(0)
	if err := k.Set(jwk.KeyIDKey, "changed"); err != nil {
		t.Fatal(err)
	}
	if kids := publicKids(t, ks); kids[0] == "changed" {
		t.Errorf("changing PublicSet's key changed the store")
	}

	doc, err := ks.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(doc), `"d"`) {
		t.Errorf("JWKS contains a private part: %s", doc)
	}
	parsed, err := jwk.Parse(doc)
	if err != nil {
		t.Fatalf("JWKS does not parse: %v\n%s", err, doc)
	}
	if parsed.Len() != 2 {
		t.Errorf("JWKS has %d keys, want 2", parsed.Len())
	}
}

func TestReopenKeepsKeys(t *testing.T) {
	ks, dir := openTestKeyStore(t, newFakeClock())
	newKid, err := ks.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	before := publicKids(t, ks)

	again, err := OpenKeyStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := currentKid(t, again); got != newKid {
		t.Errorf("reopened current key %s, want %s", got, newKid)
	}
	if got := publicKids(t, again); !slices.Equal(got, before) {
		t.Errorf("reopened public kids %v, want %v", got, before)
	}
}

func TestRotate(t *testing.T) {
	clock := newFakeClock()
	ks, dir := openTestKeyStore(t, clock)
	first := currentKid(t, ks)

	// The clock does not move: the new key must still become current.
	second, err := ks.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	third, err := ks.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if second == first || third == second {
		t.Fatalf("Rotate returned a kid already in use: %s %s %s", first, second, third)
	}
	if got := currentKid(t, ks); got != third {
		t.Errorf("current key %s, want the newest %s", got, third)
	}
	if got, want := publicKids(t, ks), []string{third, second, first}; !slices.Equal(got, want) {
		t.Errorf("public kids %v, want %v", got, want)
	}
	if n := len(keyFiles(t, dir)); n != 3 {
		t.Errorf("%d files, want 3 (and no temporary ones): %v", n, keyFiles(t, dir))
	}
}

func TestPrune(t *testing.T) {
	clock := newFakeClock()
	ks, dir := openTestKeyStore(t, clock)
	first := currentKid(t, ks)

	clock.Advance(time.Hour)
	second, err := ks.Rotate() // replaces first now
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(24 * time.Hour)
	third, err := ks.Rotate() // replaces second now
	if err != nil {
		t.Fatal(err)
	}

	// A left-over temporary file, old enough to go.
	tmp := filepath.Join(dir, ".tmp-123.jwk.json")
	if err := os.WriteFile(tmp, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := clock.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(tmp, old, old); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name        string
		advance     time.Duration
		wantRemoved []string
		wantKids    []string
	}{
		{"first replaced 24h ago", 0, nil, []string{third, second, first}},
		{"first replaced 48h ago", 24 * time.Hour, []string{first}, []string{third, second}},
		{"second replaced 48h ago", 24 * time.Hour, []string{second}, []string{third}},
		{"current key stays", 365 * 24 * time.Hour, nil, []string{third}},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		removed, err := ks.Prune()
		if err != nil {
			t.Fatalf("%s: Prune: %v", s.name, err)
		}
		if !slices.Equal(removed, s.wantRemoved) {
			t.Errorf("%s: removed %v, want %v", s.name, removed, s.wantRemoved)
		}
		if got := publicKids(t, ks); !slices.Equal(got, s.wantKids) {
			t.Errorf("%s: public kids %v, want %v", s.name, got, s.wantKids)
		}
		var files []string
		for _, kid := range s.wantKids {
			files = append(files, kid+".jwk.json")
		}
		slices.Sort(files)
		if got := keyFiles(t, dir); !slices.Equal(got, files) {
			t.Errorf("%s: files %v, want %v", s.name, got, files)
		}
	}
}

func TestPruneRetention(t *testing.T) {
	clock := newFakeClock()
	ks, _ := openTestKeyStore(t, clock)
	ks.Retention = 2 * time.Hour
	first := currentKid(t, ks)
	clock.Advance(time.Minute)
	if _, err := ks.Rotate(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2*time.Hour - time.Second)
	if removed, _ := ks.Prune(); len(removed) != 0 {
		t.Errorf("removed %v before the retention passed", removed)
	}
	clock.Advance(time.Second)
	if removed, _ := ks.Prune(); !slices.Equal(removed, []string{first}) {
		t.Errorf("removed %v, want [%s]", removed, first)
	}
}

func TestReloadSharedDirectory(t *testing.T) {
	clock := newFakeClock()
	a, dir := openTestKeyStore(t, clock)
	b, err := openKeyStoreWithKey(dir, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if currentKid(t, a) != currentKid(t, b) {
		t.Fatalf("two stores on one directory have different keys")
	}
	first := currentKid(t, a)

	// An operator rotates from the command line, then instance a rotates.
	clock.Advance(time.Minute)
	byOperator, err := RotateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := currentKid(t, a); got != byOperator {
		t.Errorf("a's current key %s after reload, want the operator's %s", got, byOperator)
	}
	clock.Advance(time.Minute)
	byA, err := a.Rotate()
	if err != nil {
		t.Fatal(err)
	}

	// b re-reads the directory by itself: its last read is older than
	// ReloadInterval.
	if got := currentKid(t, b); got != byA {
		t.Errorf("b's current key %s, want %s", got, byA)
	}
	if got, want := publicKids(t, b), []string{byA, byOperator, first}; !slices.Equal(got, want) {
		t.Errorf("b's public kids %v, want %v", got, want)
	}

	// a prunes the oldest key; b drops it at its next reload.
	clock.Advance(DefaultRetention)
	if _, err := a.Prune(); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, want := publicKids(t, b), []string{byA}; !slices.Equal(got, want) {
		t.Errorf("b's public kids after a pruned %v, want %v", got, want)
	}
}

func TestReloadBadFiles(t *testing.T) {
	tests := []struct {
		file    string
		wantMsg string
	}{
		{"p384.jwk.json", "curve P-384, want P-256"},
		{"public-only.jwk.json", "not a private EC key"},
		{"not-json.jwk.json", "not-json.jwk.json"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ks, dir := openTestKeyStore(t, newFakeClock())
			before := publicKids(t, ks)
			addTestdataKey(t, dir, tt.file)

			err := ks.Reload()
			if !errors.Is(err, ErrInvalidKeyFile) {
				t.Fatalf("Reload = %v, want ErrInvalidKeyFile", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Reload = %q, want it to contain %q", err, tt.wantMsg)
			}
			if got := publicKids(t, ks); !slices.Equal(got, before) {
				t.Errorf("keys after a bad reload %v, want %v", got, before)
			}
			if _, err := OpenKeyStore(dir); !errors.Is(err, ErrInvalidKeyFile) {
				t.Errorf("OpenKeyStore = %v, want ErrInvalidKeyFile", err)
			}
		})
	}
}

func TestReloadHandmadeKey(t *testing.T) {
	ks, dir := openTestKeyStore(t, newFakeClock())
	generated := currentKid(t, ks)

	// A key without kid or created_at: the kid is its thumbprint, and the
	// file's modification time, here in the past, orders it.
	addTestdataKey(t, dir, "handmade-p256.jwk.json")
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "handmade-p256.jwk.json"), past, past); err != nil {
		t.Fatal(err)
	}
	// Neither hidden files nor other names count.
	for _, name := range []string{".tmp-1.jwk.json", "README.md", "old.json"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("not a key"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := ks.Reload(); err != nil {
		t.Fatal(err)
	}
	kids := publicKids(t, ks)
	if len(kids) != 2 || kids[0] != generated {
		t.Fatalf("public kids %v, want [%s, <thumbprint>]", kids, generated)
	}
	const thumbprint = "RqZYxankYGI0Zld74-0e9GP2SxOc9_d_95Pqqm1nzf4" // RFC 7638, computed independently
	if kids[1] != thumbprint {
		t.Errorf("hand-made key's kid %s, want its thumbprint %s", kids[1], thumbprint)
	}
}

func TestReloadEmptyDirectory(t *testing.T) {
	ks, dir := openTestKeyStore(t, newFakeClock())
	kid := currentKid(t, ks)
	if err := os.Remove(filepath.Join(dir, kid+".jwk.json")); err != nil {
		t.Fatal(err)
	}
	if err := ks.Reload(); !errors.Is(err, ErrNoKeys) {
		t.Errorf("Reload of an empty directory = %v, want ErrNoKeys", err)
	}
	if got := currentKid(t, ks); got != kid {
		t.Errorf("current key %s, want %s kept", got, kid)
	}
}

func TestRotateDirCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	kid, err := RotateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keyFiles(t, dir), []string{kid + ".jwk.json"}; !slices.Equal(got, want) {
		t.Errorf("files %v, want %v (one key, not two)", got, want)
	}
}

func TestKeyStoreConcurrent(t *testing.T) {
	clock := newFakeClock()
	a, dir := openTestKeyStore(t, clock)
	b, err := openKeyStoreWithKey(dir, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	// For the race detector: two stores on one directory, used at once.
	var wg sync.WaitGroup
	for _, ks := range []*KeyStore{a, b} {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 5 {
				if _, err := ks.Rotate(); err != nil {
					t.Error(err)
				}
				if _, err := ks.Prune(); err != nil {
					t.Error(err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 20 {
				if err := ks.Reload(); err != nil {
					t.Error(err)
				}
				_, _ = ks.Current()
				_ = ks.PublicSet()
				if _, err := ks.JWKS(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, want := publicKids(t, a), publicKids(t, b); !slices.Equal(got, want) || len(got) != 11 {
		t.Errorf("after reloading, a has %v and b %v; want the same 11 keys", got, want)
	}
}

// Opening a key store writes nothing, so that validating a configuration
// leaves the disk alone; the directory and the first key are made when a
// key is first needed.
func TestOpenKeyStoreWritesNothingUntilFirstUse(t *testing.T) {
	for _, tt := range []struct {
		name string
		use  func(*KeyStore) error
	}{
		{"Current", func(ks *KeyStore) error { _, err := ks.Current(); return err }},
		{"Keys", func(ks *KeyStore) error { _, err := ks.Keys(t.Context()); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			missing := filepath.Join(parent, "keys")
			empty := t.TempDir()
			for _, dir := range []string{missing, empty} {
				ks, err := OpenKeyStore(dir)
				if err != nil {
					t.Fatalf("OpenKeyStore(%s): %v", dir, err)
				}
				if _, err := os.Stat(missing); dir == missing && !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("OpenKeyStore created the directory: %v", err)
				}
				if files := keyFiles(t, empty); len(files) != 0 {
					t.Errorf("OpenKeyStore wrote %v", files)
				}
				if n := ks.PublicSet().Len(); n != 0 {
					t.Errorf("%d keys before first use", n)
				}
				if err := tt.use(ks); err != nil {
					t.Fatal(err)
				}
				if files := keyFiles(t, dir); len(files) != 1 || publicKids(t, ks)[0]+keyFileSuffix != files[0] {
					t.Errorf("after first use: files %v, keys %v", files, publicKids(t, ks))
				}
			}
		})
	}
}

// Current re-reads the directory at most once per ReloadInterval.
func TestCurrentReloadsOncePerInterval(t *testing.T) {
	clock := newFakeClock()
	a, dir := openTestKeyStore(t, clock)
	b, err := openKeyStoreWithKey(dir, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	first := currentKid(t, b)
	clock.Advance(ReloadInterval / 2)
	byA, err := a.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if got := currentKid(t, b); got != first {
		t.Errorf("b re-read the directory within ReloadInterval: %s", got)
	}
	clock.Advance(ReloadInterval / 2)
	if got := currentKid(t, b); got != byA {
		t.Errorf("b after ReloadInterval: %s, want %s", got, byA)
	}
}
