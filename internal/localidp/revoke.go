package localidp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Revocations records, as empty files in one directory, the refresh tokens
// that have been used and the sessions that have been revoked. Gateway
// instances that share the directory (as they share the key directory)
// agree on both without talking to each other: a refresh token is used up
// by creating its file exclusively, which only one instance can do.
//
// Every file name carries the expiry of its token or session, so
// [Revocations.Prune], which runs by itself once per PruneInterval as
// refresh tokens are used, can delete the files that no longer matter.
// Open it with [OpenRevocations]; it is safe for concurrent use.
type Revocations struct {
	// Now returns the current time; it defaults to time.Now. Set it before
	// use and do not change it afterwards.
	Now func() time.Time

	dir string

	mu        sync.Mutex
	lastPrune time.Time
}

const (
	usedPrefix    = "used."
	revokedPrefix = "session."
)

// OpenRevocations opens the directory dir. It writes nothing: a missing
// directory is created, with mode 0700, when the first record is written.
// It refuses a directory others may write to (the error wraps
// [ErrInsecurePermissions]).
func OpenRevocations(dir string) (*Revocations, error) {
	info, err := os.Stat(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("localidp: opening revocation directory: %w", err)
	}
	if err == nil {
		if err := checkPerm(dir, info, dirForbidden, "revocation directory", "anyone who can write to it can revive a revoked session"); err != nil {
			return nil, err
		}
	}
	return &Revocations{dir: dir, Now: time.Now}, nil
}

// create creates the file path holding content, exclusively if excl is
// set, and the directory if it is missing.
func (r *Revocations) create(path string, excl bool, content []byte) error {
	flags := os.O_WRONLY | os.O_CREATE
	if excl {
		flags |= os.O_EXCL
	}
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(content)
	return errors.Join(werr, f.Close())
}

// name returns the file name for id (a UUID) of the given kind and expiry.
func (r *Revocations) name(prefix, id string, exp time.Time) (string, error) {
	if _, err := uuid.Parse(id); err != nil {
		return "", fmt.Errorf("%q is not a UUID", id)
	}
	return filepath.Join(r.dir, prefix+strconv.FormatInt(exp.Unix(), 10)+"."+id), nil
}

// use records the refresh token jti, which expires at exp, as used at
// now. It reports whether this was its first use and, if not, when the
// first was (now, when the first use is being recorded this instant).
func (r *Revocations) use(jti string, exp, now time.Time) (first bool, firstAt time.Time, err error) {
	path, err := r.name(usedPrefix, jti, exp)
	if err != nil {
		return false, time.Time{}, err
	}
	r.prunePeriodically()
	err = r.create(path, true, []byte(strconv.FormatInt(now.UnixNano(), 10)))
	if errors.Is(err, fs.ErrExist) {
		b, _ := os.ReadFile(path)
		at, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil {
			return false, now, nil // being written by the first use
		}
		return false, time.Unix(0, at), nil
	}
	if err != nil {
		return false, time.Time{}, fmt.Errorf("localidp: recording a used refresh token: %w", err)
	}
	return true, now, nil
}

// revoke marks the session sid, which expires at exp, as revoked.
func (r *Revocations) revoke(sid string, exp time.Time) error {
	path, err := r.name(revokedPrefix, sid, exp)
	if err != nil {
		return err
	}
	if err := r.create(path, false, nil); err != nil {
		return fmt.Errorf("localidp: revoking a session: %w", err)
	}
	return nil
}

// revoked reports whether the session sid, which expires at exp, was
// revoked.
func (r *Revocations) revoked(sid string, exp time.Time) (bool, error) {
	path, err := r.name(revokedPrefix, sid, exp)
	if err != nil {
		return false, err
	}
	_, err = os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("localidp: checking a session: %w", err)
}

// prunePeriodically runs Prune if it last ran PruneInterval ago or more.
func (r *Revocations) prunePeriodically() {
	r.mu.Lock()
	now := r.Now()
	due := now.Sub(r.lastPrune) >= PruneInterval
	if due {
		r.lastPrune = now
	}
	r.mu.Unlock()
	if due {
		_, _ = r.Prune()
	}
}

// Prune deletes the records of tokens and sessions that expired more than
// a minute ago, when they no longer verify anyway. It returns how many it
// deleted. Call it now and then (hourly is plenty).
func (r *Revocations) Prune() (int, error) {
	entries, err := os.ReadDir(r.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("localidp: reading revocation directory: %w", err)
	}
	now := r.Now()
	removed := 0
	for _, e := range entries {
		kind, rest, _ := strings.Cut(e.Name(), ".")
		expStr, _, _ := strings.Cut(rest, ".")
		exp, err := strconv.ParseInt(expStr, 10, 64)
		if kind+"." != usedPrefix && kind+"." != revokedPrefix || err != nil || now.Sub(time.Unix(exp, 0)) <= refreshSkew {
			continue
		}
		if err := os.Remove(filepath.Join(r.dir, e.Name())); err == nil {
			removed++
		}
	}
	return removed, nil
}
