package localidp

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
)

// HashCost is the bcrypt cost [HashPassword] uses.
const HashCost = 12

// The bcrypt costs accepted in the users file. A lower cost makes stolen
// hashes cheap to crack; a higher one makes each sign-in cost seconds of
// CPU, which turns the login endpoint into a lever for overloading the
// gateway. "caddy hash-password" uses 14.
const (
	MinHashCost = 10
	MaxHashCost = 14
)

// usersCheckInterval is how often Authenticate and Refresh look at the
// users file's modification time.
const usersCheckInterval = time.Second

// dummyHashTail is the salt and hash part of a bcrypt hash of a password
// nobody knows. [Users.Authenticate] compares against it, with the cost of
// the real hashes, when the email is unknown; the work is the same as for a
// wrong password.
const dummyHashTail = "X1AMQLSADAuBBlmxYlTVGeCBPTCoqreSxUZVbp0ZOMNDXksjPGuDi"

// User is an account from the users file.
type User struct {
	// Email as written in the users file.
	Email string
	// Sub is the stable subject identifier put in tokens.
	Sub string
	// Groups become the cognito:groups claim.
	Groups []string
	// Generation is the user's token_generation: refresh tokens issued
	// while it had another value are refused.
	Generation int64

	hash []byte // bcrypt
}

// clone returns a copy that shares nothing mutable with u.
func (u *User) clone() *User {
	c := *u
	c.Groups = append([]string(nil), u.Groups...)
	return &c
}

// credential returns a short fingerprint of the user's password hash.
// Refresh tokens carry it, so that changing a password ends them.
func (u *User) credential() string {
	sum := sha256.Sum256(u.hash)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// Users is the set of accounts read from a users file. It re-reads the file
// when it changes; see the package documentation. It is safe for concurrent
// use.
type Users struct {
	path    string
	now     func() time.Time
	compare func(hash, password []byte) error // bcrypt.CompareHashAndPassword

	reloadMu sync.Mutex // serialises Reload

	mu      sync.RWMutex
	byEmail map[string]*User // by normalised email
	bySub   map[string]*User
	dummy   []byte    // bcrypt hash for unknown emails
	tried   string    // stamp of the last file read, good or bad
	lastErr error     // of the last reload
	checked time.Time // last look at the file's stamp
}

// LoadUsers reads the users file at path. Errors about the file's content
// wrap [ErrInvalidUsersFile]; errors reading it wrap the [os] error.
func LoadUsers(path string) (*Users, error) {
	u := &Users{
		path:    path,
		now:     time.Now,
		compare: bcrypt.CompareHashAndPassword,
	}
	if err := u.Reload(); err != nil {
		return nil, err
	}
	u.checked = u.now()
	return u, nil
}

// Reload re-reads the users file if its modification time or size changed
// since it was last read. If the file cannot be read or is invalid, the
// users loaded before stay in effect and the error is returned (and again
// by [Users.LastReloadError]) until the file changes again.
func (u *Users) Reload() error {
	u.reloadMu.Lock()
	defer u.reloadMu.Unlock()

	byEmail, bySub, dummy, stamp, err := readUsersFile(u.path, u.tried)
	if errors.Is(err, errUnchanged) {
		return u.LastReloadError()
	}

	u.mu.Lock()
	defer u.mu.Unlock()
	u.tried, u.lastErr = stamp, err
	if err == nil {
		u.byEmail, u.bySub, u.dummy = byEmail, bySub, dummy
	}
	return err
}

// LastReloadError returns the error of the most recent reload, automatic
// or not, or nil if it succeeded. While it is not nil, the users loaded
// before are still in effect.
func (u *Users) LastReloadError() error {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.lastErr
}

// Authenticate returns the user with this email (compared without regard to
// case) if password matches the user's hash. It returns
// [ErrInvalidCredentials] both for an unknown email and for a wrong
// password, after a bcrypt comparison of the same cost in both cases.
func (u *Users) Authenticate(email, password string) (*User, error) {
	u.maybeReload()

	u.mu.RLock()
	user, found := u.byEmail[normalizeEmail(email)]
	hash := u.dummy
	if found {
		hash = user.hash
	}
	u.mu.RUnlock()

	if err := u.compare(hash, []byte(password)); err != nil || !found {
		return nil, ErrInvalidCredentials
	}
	return user.clone(), nil
}

// bySubject returns the user with this sub.
func (u *Users) bySubject(sub string) (*User, bool) {
	u.maybeReload()
	u.mu.RLock()
	defer u.mu.RUnlock()
	user, found := u.bySub[sub]
	if !found {
		return nil, false
	}
	return user.clone(), true
}

// maybeReload calls Reload if the file was last checked more than
// usersCheckInterval ago. Its error is kept for LastReloadError.
func (u *Users) maybeReload() {
	now := u.now()
	u.mu.Lock()
	if since := now.Sub(u.checked); since >= 0 && since < usersCheckInterval {
		u.mu.Unlock()
		return
	}
	u.checked = now
	u.mu.Unlock()
	_ = u.Reload()
}

// HashPassword returns a bcrypt hash of pw with cost [HashCost], for the
// password_hash field of the users file. Passwords longer than 72 bytes
// are rejected, as bcrypt would ignore the rest.
func HashPassword(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), HashCost)
	if err != nil {
		return "", fmt.Errorf("localidp: hashing password: %w", err)
	}
	return string(h), nil
}

// errUnchanged reports that the users file has the stamp it had when last
// read.
var errUnchanged = errors.New("unchanged")

// usersFile is the JSON layout of the users file.
type usersFile struct {
	Users *[]userEntry `json:"users"`
}

type userEntry struct {
	Email        string   `json:"email"`
	PasswordHash string   `json:"password_hash"`
	Groups       []string `json:"groups"`
	Sub          string   `json:"sub"`
	// TokenGeneration is raised by an operator to end the user's sessions.
	TokenGeneration int64 `json:"token_generation"`
}

// readUsersFile reads and checks the users file at path, unless its stamp
// (modification time, size and mode, which a chmod changes without
// changing the content) equals last, in which case it returns
// errUnchanged. It always returns the stamp of what it read.
func readUsersFile(path string, last string) (byEmail, bySub map[string]*User, dummy []byte, stamp string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, stamp, fmt.Errorf("localidp: reading users file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, nil, stamp, fmt.Errorf("localidp: reading users file: %w", err)
	}
	stamp = fmt.Sprint(st.ModTime().UnixNano(), st.Size(), st.Mode())
	if stamp == last {
		return nil, nil, nil, stamp, errUnchanged
	}
	if err := checkPerm(path, st, usersFileForbidden, "users file", "anyone who can change it can add an admin"); err != nil {
		return nil, nil, nil, stamp, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, nil, stamp, fmt.Errorf("localidp: reading users file: %w", err)
	}
	byEmail, bySub, dummy, err = parseUsers(data)
	if err != nil {
		return nil, nil, nil, stamp, fmt.Errorf("%w %s: %v", ErrInvalidUsersFile, path, err)
	}
	return byEmail, bySub, dummy, stamp, nil
}

// parseUsers checks the content of a users file and indexes it.
func parseUsers(data []byte) (byEmail, bySub map[string]*User, dummy []byte, err error) {
	var file usersFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return nil, nil, nil, fmt.Errorf("bad JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, nil, errors.New("bad JSON: data after the top-level object")
	}
	if file.Users == nil {
		return nil, nil, nil, errors.New(`no "users" list`)
	}

	byEmail = make(map[string]*User, len(*file.Users))
	bySub = make(map[string]*User, len(*file.Users))
	emailAt := make(map[string]int) // user number by normalised email
	subAt := make(map[string]int)
	costs := make(map[int]int) // number of hashes by cost
	for i, e := range *file.Users {
		n := i + 1 // users are numbered from 1 in messages
		email := strings.TrimSpace(e.Email)
		if email == "" {
			return nil, nil, nil, fmt.Errorf("user %d: email is missing", n)
		}
		if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
			return nil, nil, nil, fmt.Errorf("user %d: %q is not a plain email address", n, email)
		}
		key := normalizeEmail(email)
		if prev, dup := emailAt[key]; dup {
			return nil, nil, nil, fmt.Errorf("user %d: email %q is already used by user %d (emails are compared without regard to case)", n, email, prev)
		}
		emailAt[key] = n

		hash, cost, err := parseHash(e.PasswordHash)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("user %d (%s): %v", n, email, err)
		}
		costs[cost]++

		sub := strings.TrimSpace(e.Sub)
		if sub == "" {
			sub = DefaultSub(email)
		} else if err := checkSub(sub); err != nil {
			return nil, nil, nil, fmt.Errorf("user %d (%s): %v", n, email, err)
		}
		if prev, dup := subAt[sub]; dup {
			return nil, nil, nil, fmt.Errorf("user %d (%s): sub %q is already used by user %d", n, email, sub, prev)
		}
		subAt[sub] = n

		if slices.ContainsFunc(e.Groups, func(g string) bool { return strings.TrimSpace(g) == "" }) {
			return nil, nil, nil, fmt.Errorf("user %d (%s): empty group name", n, email)
		}

		if e.TokenGeneration < 0 {
			return nil, nil, nil, fmt.Errorf("user %d (%s): token_generation is negative", n, email)
		}

		user := &User{Email: email, Sub: sub, Groups: e.Groups, Generation: e.TokenGeneration, hash: hash}
		byEmail[key] = user
		bySub[sub] = user
	}
	return byEmail, bySub, dummyHash(costs), nil
}

// parseHash checks that s is a bcrypt hash, also accepting one in base64
// as older Caddy versions printed them, and returns it with its cost.
func parseHash(s string) (hash []byte, cost int, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, 0, errors.New("password_hash is missing")
	}
	if !strings.HasPrefix(s, "$") {
		if dec, err := base64.StdEncoding.DecodeString(s); err == nil && bytes.HasPrefix(dec, []byte("$2")) {
			s = string(dec)
		}
	}
	if strings.HasPrefix(s, "$argon2") {
		return nil, 0, errors.New("password_hash is an argon2 hash; only bcrypt is supported (caddy hash-password --algorithm bcrypt)")
	}
	hash = []byte(s)
	cost, err = bcrypt.Cost(hash)
	if err != nil || len(hash) != 60 {
		return nil, 0, errors.New("password_hash is not a bcrypt hash (make one with caddy hash-password --algorithm bcrypt)")
	}
	if cost < MinHashCost || cost > MaxHashCost {
		return nil, 0, fmt.Errorf("password_hash has bcrypt cost %d; accepted costs are %d to %d", cost, MinHashCost, MaxHashCost)
	}
	return hash, cost, nil
}

// checkSub rejects subjects that cannot be used as identifiers.
func checkSub(sub string) error {
	if len(sub) > 128 {
		return fmt.Errorf("sub %q is longer than 128 bytes", sub)
	}
	if strings.ContainsFunc(sub, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return fmt.Errorf("sub %q contains spaces or control characters", sub)
	}
	return nil
}

// dummyHash returns a hash with the cost most of the users' hashes have
// (the higher one on a tie, HashCost if there are no users).
func dummyHash(costs map[int]int) []byte {
	cost, most := HashCost, 0
	for c, n := range costs {
		if n > most || n == most && c > cost {
			cost, most = c, n
		}
	}
	return fmt.Appendf(nil, "$2a$%02d$%s", cost, dummyHashTail)
}

// DefaultSub returns the sub given to a user whose entry has none: the
// version 5 UUID of "mailto:" followed by the lower-case email, in the URL
// namespace of RFC 9562. It stays the same as long as the email does.
func DefaultSub(email string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("mailto:"+normalizeEmail(email))).String()
}

func normalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}
