package localidp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUsersFilePermissions(t *testing.T) {
	tests := []struct {
		name    string
		mode    os.FileMode
		wantErr string // "" when the file must load
	}{
		{"owner only", 0o600, ""},
		{"group may read", 0o640, ""},
		{"all may read", 0o644, ""},
		{"group may write", 0o660, "writable by its group"},
		{"others may write", 0o602, "writable by others"},
		{"everyone may write", 0o666, "writable by group and others"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := copyTestdata(t, "users/valid.json")
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadUsers(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadUsers with mode %04o: %v", tt.mode, err)
				}
				return
			}
			if !errors.Is(err, ErrInsecurePermissions) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Errorf("LoadUsers with mode %04o = %v, want ErrInsecurePermissions naming %s and saying %q", tt.mode, err, path, tt.wantErr)
			}
		})
	}
}

// A users file made writable for others after start-up is not read again:
// the users loaded before stay, and the reason is reported.
func TestUsersFileMadeWritableKeepsOldUsers(t *testing.T) {
	clock := newFakeClock()
	u, path := loadTestUsers(t, "valid.json", clock)
	if err := os.WriteFile(path, []byte(`{"users":[]}`), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := u.Reload(); !errors.Is(err, ErrInsecurePermissions) {
		t.Fatalf("Reload = %v, want ErrInsecurePermissions", err)
	}
	if len(u.byEmail) != 3 {
		t.Errorf("%d users after a refused reload, want the 3 loaded before", len(u.byEmail))
	}
}

func TestKeyDirectoryPermissions(t *testing.T) {
	tests := []struct {
		name             string
		dirMode, keyMode os.FileMode
		wantErr          string
	}{
		{"private", 0o700, 0o600, ""},
		{"directory readable by all", 0o755, 0o600, ""},
		{"directory writable by group", 0o770, 0o600, "key directory"},
		{"directory writable by all", 0o777, 0o600, "key directory"},
		{"key readable by all", 0o700, 0o644, "private key file"},
		{"key readable by group", 0o700, 0o640, "private key file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			if _, err := openKeyStoreWithKey(dir, time.Now); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if isKeyFile(e.Name()) {
					if err := os.Chmod(filepath.Join(dir, e.Name()), tt.keyMode); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := os.Chmod(dir, tt.dirMode); err != nil {
				t.Fatal(err)
			}
			_, err := OpenKeyStore(dir)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("OpenKeyStore: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInsecurePermissions) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("OpenKeyStore = %v, want ErrInsecurePermissions about the %s", err, tt.wantErr)
			}
		})
	}
}

// A key file dropped in readable by all, after start-up, is not taken: the
// keys held before stay.
func TestReloadRefusesReadableKey(t *testing.T) {
	ks, dir := openTestKeyStore(t, newFakeClock())
	before := currentKid(t, ks)
	other, err := openKeyStoreWithKey(filepath.Join(t.TempDir(), "other"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(other.dir)
	data, err := os.ReadFile(filepath.Join(other.dir, entries[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(dir, "planted"+keyFileSuffix)
	if err := os.WriteFile(planted, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(planted, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ks.Reload(); !errors.Is(err, ErrInsecurePermissions) {
		t.Fatalf("Reload = %v, want ErrInsecurePermissions", err)
	}
	if currentKid(t, ks) != before || len(publicKids(t, ks)) != 1 {
		t.Errorf("the readable key was taken: current %s, published %v", currentKid(t, ks), publicKids(t, ks))
	}
}
