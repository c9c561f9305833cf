package localidp

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// DefaultRetention is how long a replaced key stays published when
// [KeyStore.Retention] is zero.
const DefaultRetention = 48 * time.Hour

const (
	keyFileSuffix = ".jwk.json"
	tempPrefix    = ".tmp-"
	createdParam  = "created_at" // JWK member holding the creation time
	tempMaxAge    = time.Hour    // left-over temporary files older than this are removed by Prune
	minKidReload  = time.Second  // see reloadForKid
)

// How often [KeyStore.Keys] and [KeyStore.Current] re-read the key
// directory and prune it.
const (
	ReloadInterval = time.Second
	PruneInterval  = time.Hour
)

// KeyStore holds the ES256 (P-256) signing keys kept in one directory. It
// is safe for concurrent use. Open it with [OpenKeyStore].
type KeyStore struct {
	// Retention is how long a key stays published after a newer key
	// replaced it, before Prune deletes it. Zero means DefaultRetention. It
	// must be at least twice the lifetime of the tokens signed with these
	// keys, and longer than that of refresh tokens if these are to survive
	// a rotation unused. Set it before use and do not change it afterwards.
	Retention time.Duration

	// Now returns the current time; it defaults to time.Now. Set it before
	// use and do not change it afterwards.
	Now func() time.Time

	dir string

	writeMu sync.Mutex // serialises Reload, Rotate and Prune

	mu         sync.RWMutex
	keys       []*storedKey // newest first; empty until a key exists
	jwks       []byte       // the public keys as a JWK set
	listing    string       // of the directory when last read
	lastReload time.Time
	lastPrune  time.Time // guarded by writeMu
}

// storedKey is one key file.
type storedKey struct {
	kid     string
	created time.Time
	file    string  // base name in the directory
	private jwk.Key // with kid, alg and use
	public  jwk.Key // with kid, alg and use only
}

// OpenKeyStore opens the key directory dir and reads the keys in it. It
// writes nothing: a missing directory is created, with mode 0700, and a
// first key generated, when a key is first needed ([KeyStore.Current],
// [KeyStore.Keys]), so that validating a configuration leaves the disk
// alone. Errors about a file in it wrap [ErrInvalidKeyFile].
func OpenKeyStore(dir string) (*KeyStore, error) {
	return openKeyStore(dir, time.Now)
}

// RotateDir adds a new signing key to the key directory dir, creating the
// directory if needed, and returns its kid. Running gateways use it from
// their next [KeyStore.Reload]. Nothing is pruned.
func RotateDir(dir string) (kid string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("localidp: creating key directory: %w", err)
	}
	ks, err := openKeyStore(dir, time.Now)
	if err != nil {
		return "", err
	}
	return ks.Rotate()
}

// openKeyStore opens dir with the clock now.
func openKeyStore(dir string, now func() time.Time) (*KeyStore, error) {
	ks := &KeyStore{dir: dir, Now: now}
	if err := ks.Reload(); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrNoKeys) {
		return nil, err
	}
	return ks, nil
}

// Keys implements the key source of package jwtauth: the public keys, as
// [KeyStore.PublicSet], after the upkeep [KeyStore.Current] does.
func (ks *KeyStore) Keys(context.Context) (jwk.Set, error) {
	if err := ks.upkeep(); err != nil {
		return nil, err
	}
	return ks.PublicSet(), nil
}

// upkeep creates the directory and a first key if the store holds none,
// re-reads the directory once per ReloadInterval, and prunes it once per
// PruneInterval (a failed prune waits for the next one).
func (ks *KeyStore) upkeep() error {
	ks.writeMu.Lock() // every writer of keys and of the times holds it
	defer ks.writeMu.Unlock()
	now := ks.Now()
	if len(ks.keys) == 0 || now.Sub(ks.lastReload) >= ReloadInterval {
		err := ks.reload()
		if (errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNoKeys)) && len(ks.keys) == 0 {
			if err = os.MkdirAll(ks.dir, 0o700); err == nil {
				_, err = ks.rotate()
			}
		}
		if err != nil {
			return err
		}
	}
	if now.Sub(ks.lastPrune) >= PruneInterval {
		ks.lastPrune = now
		_, _ = ks.prune()
	}
	return nil
}

// retention returns Retention or its default.
func (ks *KeyStore) retention() time.Duration {
	if ks.Retention > 0 {
		return ks.Retention
	}
	return DefaultRetention
}

// Current returns the private key to sign with: the one created last,
// after re-reading the directory if it was last read ReloadInterval ago or
// more (another instance or an operator may have rotated), and creating
// the directory and a first key if there is none. It prunes the directory
// once per PruneInterval. The caller must not modify the key.
func (ks *KeyStore) Current() (jwk.Key, error) {
	if err := ks.upkeep(); err != nil {
		return nil, err
	}
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.keys[0].private, nil
}

// PublicSet returns a new set holding the public half of every key, the
// current one first, each with kid, alg ES256 and use sig.
func (ks *KeyStore) PublicSet() jwk.Set {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	set := jwk.NewSet()
	for _, k := range ks.keys {
		pub, err := k.public.Clone()
		if err == nil {
			err = set.AddKey(pub)
		}
		if err != nil { // cannot happen: EC keys clone, and kids are unique
			panic(fmt.Sprintf("localidp: adding public key %s: %v", k.kid, err))
		}
	}
	return set
}

// JWKS returns the public keys as the JSON document to serve at
// /.well-known/jwks.json.
func (ks *KeyStore) JWKS() ([]byte, error) {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return slices.Clone(ks.jwks), nil
}

// Reload re-reads the key directory if the list of key files, or the
// modification time or size of one, changed since it was last read. If a
// key file is invalid (the error wraps [ErrInvalidKeyFile]) or there are no
// key files left ([ErrNoKeys]), the keys held before stay in effect.
func (ks *KeyStore) Reload() error {
	ks.writeMu.Lock()
	defer ks.writeMu.Unlock()
	return ks.reload()
}

// reloadForKid reloads if kid is unknown and no reload happened within
// minKidReload, so that a token signed by a key another instance just
// created can be verified, without letting made-up kids cause a directory
// read per request.
func (ks *KeyStore) reloadForKid(kid string) {
	ks.mu.RLock()
	known := slices.ContainsFunc(ks.keys, func(k *storedKey) bool { return k.kid == kid })
	recent := ks.Now().Sub(ks.lastReload) < minKidReload
	ks.mu.RUnlock()
	if !known && !recent {
		_ = ks.Reload() // on error the keys held stay, and verification fails as it would have
	}
}

// reload is Reload with writeMu held.
func (ks *KeyStore) reload() error {
	ks.mu.Lock()
	ks.lastReload = ks.Now()
	ks.mu.Unlock()
	dirInfo, err := os.Stat(ks.dir)
	if err != nil {
		return fmt.Errorf("localidp: reading key directory: %w", err)
	}
	if err := checkPerm(ks.dir, dirInfo, dirForbidden, "key directory", "anyone who can write to it can add a signing key"); err != nil {
		return err
	}
	entries, err := os.ReadDir(ks.dir)
	if err != nil {
		return fmt.Errorf("localidp: reading key directory: %w", err)
	}
	var names []string
	var listing strings.Builder
	for _, e := range entries {
		name := e.Name()
		if !isKeyFile(name) {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // pruned meanwhile
		}
		if err != nil {
			return fmt.Errorf("localidp: reading key directory: %w", err)
		}
		names = append(names, name)
		fmt.Fprintf(&listing, "%s\x00%d\x00%d\x00%o\x00", name, info.ModTime().UnixNano(), info.Size(), info.Mode())
	}
	ks.mu.RLock()
	unchanged := listing.Len() > 0 && listing.String() == ks.listing
	ks.mu.RUnlock()
	if unchanged {
		return nil
	}

	keys := make([]*storedKey, 0, len(names))
	seen := make(map[string]string) // file by kid
	for _, name := range names {
		k, err := readKeyFile(filepath.Join(ks.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if other, dup := seen[k.kid]; dup {
			return fmt.Errorf("%w: %s and %s have the same kid %q", ErrInvalidKeyFile, other, name, k.kid)
		}
		seen[k.kid] = name
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w in %s", ErrNoKeys, ks.dir)
	}
	return ks.install(keys, listing.String())
}

// install makes keys, sorted here, the keys in effect, read from a
// directory with the given listing. An empty listing makes the next Reload
// read the directory.
func (ks *KeyStore) install(keys []*storedKey, listing string) error {
	slices.SortFunc(keys, func(a, b *storedKey) int {
		if c := b.created.Compare(a.created); c != 0 {
			return c
		}
		return strings.Compare(a.kid, b.kid)
	})
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k.public); err != nil {
			return fmt.Errorf("localidp: building key set: %w", err)
		}
	}
	doc, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("localidp: encoding key set: %w", err)
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.keys, ks.jwks, ks.listing = keys, doc, listing
	return nil
}

// Rotate creates a new key, writes it to the directory and makes it the
// current signing key. The keys it replaces stay published until Prune
// removes them. It returns the new key's kid.
func (ks *KeyStore) Rotate() (kid string, err error) {
	ks.writeMu.Lock()
	defer ks.writeMu.Unlock()
	return ks.rotate()
}

func (ks *KeyStore) rotate() (kid string, err error) {
	ks.mu.RLock()
	keys := slices.Clone(ks.keys)
	ks.mu.RUnlock()

	// The new key must sort first even if the clock has not moved since
	// the last rotation, or is behind the instance that made it.
	created := ks.Now().UTC()
	if len(keys) > 0 && !created.After(keys[0].created) {
		created = keys[0].created.Add(time.Nanosecond)
	}
	k, err := newKey(created)
	if err != nil {
		return "", err
	}
	if err := ks.writeKey(k); err != nil {
		return "", err
	}
	if err := ks.install(append(keys, k), ""); err != nil {
		return "", err
	}
	return k.kid, nil
}

// Prune deletes the keys that were replaced by a newer key more than
// Retention ago, and temporary files left by an interrupted write. The
// current key is never deleted. It returns the kids of the deleted keys.
func (ks *KeyStore) Prune() (removed []string, err error) {
	ks.writeMu.Lock()
	defer ks.writeMu.Unlock()
	return ks.prune()
}

func (ks *KeyStore) prune() (removed []string, err error) {
	now := ks.Now()
	retention := ks.retention()
	ks.mu.RLock()
	keys := slices.Clone(ks.keys)
	ks.mu.RUnlock()
	if len(keys) == 0 {
		return nil, nil
	}

	kept := []*storedKey{keys[0]}
	for i, k := range keys[1:] {
		replacedAt := keys[i].created // by the next newer key
		if now.Sub(replacedAt) < retention {
			kept = append(kept, k)
			continue
		}
		if err := os.Remove(filepath.Join(ks.dir, k.file)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("localidp: removing key %s: %w", k.kid, err)
		}
		removed = append(removed, k.kid)
	}
	ks.removeStaleTemp(now)
	if len(removed) == 0 {
		return nil, nil
	}
	return removed, ks.install(kept, "")
}

// removeStaleTemp removes temporary files older than tempMaxAge, which a
// process that died while writing a key left behind.
func (ks *KeyStore) removeStaleTemp(now time.Time) {
	entries, err := os.ReadDir(ks.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) || !strings.HasSuffix(e.Name(), keyFileSuffix) {
			continue
		}
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > tempMaxAge {
			_ = os.Remove(filepath.Join(ks.dir, e.Name()))
		}
	}
}

// isKeyFile reports whether name is a key file Reload reads. Hidden files,
// which include temporary files being written, are not.
func isKeyFile(name string) bool {
	return strings.HasSuffix(name, keyFileSuffix) && !strings.HasPrefix(name, ".")
}

// newKey generates a P-256 key with a kid that is its RFC 7638 thumbprint.
func newKey(created time.Time) (*storedKey, error) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("localidp: generating key: %w", err)
	}
	priv, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, fmt.Errorf("localidp: generating key: %w", err)
	}
	return completeKey(priv, created, "")
}

// completeKey sets kid (if missing, the RFC 7638 thumbprint), alg and use
// on priv and derives its public key. An empty file means the kid's.
func completeKey(priv jwk.Key, created time.Time, file string) (*storedKey, error) {
	kid := priv.KeyID()
	if kid == "" {
		tp, err := priv.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("localidp: computing kid: %w", err)
		}
		kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	var raw ecdsa.PrivateKey
	if err := priv.Raw(&raw); err != nil {
		return nil, fmt.Errorf("localidp: reading key: %w", err)
	}
	pub, err := jwk.FromRaw(&raw.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("localidp: deriving public key: %w", err)
	}
	for _, k := range []jwk.Key{priv, pub} {
		for name, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jwa.ES256, jwk.KeyUsageKey: jwk.ForSignature} {
			if err := k.Set(name, v); err != nil {
				return nil, fmt.Errorf("localidp: setting %s: %w", name, err)
			}
		}
	}
	return &storedKey{kid: kid, created: created, file: cmp.Or(file, kid+keyFileSuffix), private: priv, public: pub}, nil
}

// writeKey writes k to a temporary file and renames it into place, so
// that a reader sees the whole file or none.
func (ks *KeyStore) writeKey(k *storedKey) error {
	if err := k.private.Set(createdParam, k.created.Format(time.RFC3339Nano)); err != nil {
		return fmt.Errorf("localidp: setting %s: %w", createdParam, err)
	}
	data, err := json.MarshalIndent(k.private, "", "  ")
	if err != nil {
		return fmt.Errorf("localidp: encoding key: %w", err)
	}
	f, err := os.CreateTemp(ks.dir, tempPrefix+"*"+keyFileSuffix) // mode 0600
	if err != nil {
		return fmt.Errorf("localidp: writing key: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(ks.dir, k.file))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("localidp: writing key: %w", err)
	}
	if d, err := os.Open(ks.dir); err == nil { // make the rename durable
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// readKeyFile reads one key file: a private P-256 JWK. A missing kid is
// filled in with the thumbprint, a missing created_at with the file's
// modification time.
func readKeyFile(path string) (*storedKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("localidp: reading key file: %w", err) // the caller skips fs.ErrNotExist
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("localidp: reading key file: %w", err)
	}
	if err := checkPerm(path, info, keyFileForbidden, "private key file", "others must not read a signing key"); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("localidp: reading key file: %w", err)
	}
	name := filepath.Base(path)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrInvalidKeyFile, name, fmt.Sprintf(format, args...))
	}
	priv, err := jwk.ParseKey(data)
	if err != nil {
		return nil, bad("%v", err)
	}
	var raw ecdsa.PrivateKey
	if priv.KeyType() != jwa.EC || priv.Raw(&raw) != nil {
		return nil, bad("not a private EC key")
	}
	if raw.Curve != elliptic.P256() {
		return nil, bad("curve %s, want P-256", raw.Curve.Params().Name)
	}
	if alg := priv.Algorithm().String(); alg != "" && alg != jwa.ES256.String() {
		return nil, bad("alg %s, want ES256", alg)
	}
	if use := priv.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return nil, bad("use %s, want sig", use)
	}
	var created time.Time
	if v, ok := priv.Get(createdParam); ok {
		s, _ := v.(string)
		if created, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return nil, bad("%s %q is not an RFC 3339 time", createdParam, fmt.Sprint(v))
		}
	} else {
		created = info.ModTime()
	}
	return completeKey(priv, created, name)
}
