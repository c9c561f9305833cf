package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
)

// Action is something a user does with objects.
type Action string

// The actions, in the order Grants lists them.
const (
	Upload   Action = "upload"   // put objects, including multipart uploads
	Download Action = "download" // get objects
	List     Action = "list"     // list keys
	Delete   Action = "delete"   // delete objects
	Manage   Action = "manage"   // abort multipart uploads, list their parts, tag objects
)

// actions lists every Action in order.
var actions = []Action{Upload, Download, List, Delete, Manage}

// Scope says on which keys a role may perform an action.
type Scope string

// The scopes. None is the zero value: not allowed.
const (
	None Scope = ""    // nowhere
	Own  Scope = "own" // under the user's own prefix
	All  Scope = "all" // anywhere under the base prefix
)

// String returns the scope name, "none" for None.
func (s Scope) String() string {
	if s == None {
		return "none"
	}
	return string(s)
}

// Rules gives the scope of each action for one role. Actions not in the
// map have scope None.
type Rules map[Action]Scope

// ErrDenied is wrapped by every refusal of Authorize and ListPrefix.
// Callers answer 403.
var ErrDenied = errors.New("access denied")

// Policy says what each role may do on which keys. The zero value denies
// everything. A Policy is read-only once built: do not change the maps
// while it is in use.
type Policy struct {
	// Prefix is the base prefix of all files, e.g. "files/". A value not
	// ending in "/" is used as if it did; "" means the whole bucket.
	Prefix string

	// Roles holds the rules of each role. A role that is absent may do
	// nothing.
	Roles map[roles.Role]Rules
}

// Subject is the user asking.
type Subject struct {
	ID   string // immutable user id (the token's subject); "" owns nothing
	Role roles.Role
}

// Grant is a set of actions allowed on every key under Prefix, the form an
// STS session policy needs.
type Grant struct {
	Prefix  string
	Actions []Action
}

// Default returns the default policy (see the package documentation) with
// the given base prefix, normalised to end in "/" unless empty.
func Default(prefix string) Policy {
	own, all := Rules{}, Rules{}
	for _, a := range actions {
		own[a] = Own
		all[a] = All
	}
	return Policy{
		Prefix: normPrefix(prefix),
		Roles: map[roles.Role]Rules{
			roles.Admin:    all,
			roles.Uploader: own,
			roles.Viewer:   {Download: All, List: All},
			roles.None:     {},
		},
	}
}

// Override returns a copy of p in which every action named in rules has
// the scope given there, None included (the action is taken away); actions
// and roles rules does not name keep their scope in p. p is not changed.
func (p Policy) Override(rules map[roles.Role]Rules) Policy {
	out := Policy{Prefix: p.Prefix, Roles: make(map[roles.Role]Rules, len(p.Roles)+len(rules))}
	for r, rs := range p.Roles {
		out.Roles[r] = maps.Clone(rs)
	}
	for r, rs := range rules {
		if out.Roles[r] == nil {
			out.Roles[r] = Rules{}
		}
		maps.Copy(out.Roles[r], rs)
	}
	return out
}

// normPrefix makes a non-empty prefix end in "/".
func normPrefix(p string) string {
	if p != "" && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// OwnerPrefix returns the prefix owned by the user with this id:
// Prefix + "users/" + the escaped id + "/". Different ids always give
// different prefixes, none of which is a prefix of another (see the package
// documentation). The empty id gets "users/_/", which Authorize never
// grants.
func (p Policy) OwnerPrefix(userID string) string {
	return normPrefix(p.Prefix) + "users/" + safeSegment(userID) + "/"
}

// ScopeOf returns the scope of action a for role r; None if either is
// unknown.
func (p Policy) ScopeOf(r roles.Role, a Action) Scope {
	return p.Roles[r][a]
}

// Authorize returns nil if s may perform a on key: with scope All the key
// must be under Prefix, with scope Own under OwnerPrefix(s.ID). Otherwise,
// and for any unsafe key (see the package documentation), it returns an
// error wrapping ErrDenied that names the action and the scope, not the key.
func (p Policy) Authorize(s Subject, a Action, key string) error {
	base, scope, err := p.base(s, a)
	if err != nil {
		return err
	}
	if !SafeKey(key) {
		return fmt.Errorf("%w: %s (scope %s): unsafe key", ErrDenied, a, scope)
	}
	if !strings.HasPrefix(key, base) {
		if scope == Own {
			return fmt.Errorf("%w: %s (scope own): not the user's own file", ErrDenied, a)
		}
		return fmt.Errorf("%w: %s (scope %s): key outside the base prefix", ErrDenied, a, scope)
	}
	return nil
}

// ListPrefix returns the prefix a List by s may use: s's own prefix, or,
// when wantAll is set, the base prefix. It returns an error wrapping
// ErrDenied when s may not list at all, or wantAll is set and s's scope for
// List is not All.
func (p Policy) ListPrefix(s Subject, wantAll bool) (string, error) {
	scope := p.ScopeOf(s.Role, List)
	if wantAll {
		if scope != All {
			return "", fmt.Errorf("%w: %s all (scope %s)", ErrDenied, List, scope)
		}
		return normPrefix(p.Prefix), nil
	}
	if scope == None {
		return "", fmt.Errorf("%w: %s (scope none)", ErrDenied, List)
	}
	if s.ID == "" {
		return "", fmt.Errorf("%w: %s (scope %s): no user id", ErrDenied, List, scope)
	}
	return p.OwnerPrefix(s.ID), nil
}

// base returns the prefix under which s may perform a, and the scope.
func (p Policy) base(s Subject, a Action) (string, Scope, error) {
	switch scope := p.ScopeOf(s.Role, a); scope {
	case All:
		return normPrefix(p.Prefix), scope, nil
	case Own:
		if s.ID == "" {
			return "", scope, fmt.Errorf("%w: %s (scope own): no user id", ErrDenied, a)
		}
		return p.OwnerPrefix(s.ID), scope, nil
	case None:
		return "", scope, fmt.Errorf("%w: %s (scope none)", ErrDenied, a)
	default:
		return "", scope, fmt.Errorf("%w: %s (unknown scope %q)", ErrDenied, a, string(scope))
	}
}

// Grants returns what s may do as prefixes with the actions allowed under
// each: one Grant for the actions of scope All (under Prefix), then one for
// those of scope Own (under s's own prefix, left out for the empty id).
// Each action appears once. A subject that may do nothing gets nil.
func (p Policy) Grants(s Subject) []Grant {
	var all, own []Action
	for _, a := range actions {
		switch p.ScopeOf(s.Role, a) {
		case All:
			all = append(all, a)
		case Own:
			if s.ID != "" {
				own = append(own, a)
			}
		}
	}
	var gs []Grant
	if len(all) > 0 {
		gs = append(gs, Grant{Prefix: normPrefix(p.Prefix), Actions: all})
	}
	if len(own) > 0 {
		gs = append(gs, Grant{Prefix: p.OwnerPrefix(s.ID), Actions: own})
	}
	return gs
}

// Validate reports a configuration the gateway cannot use safely: an unsafe
// Prefix, or an unknown role, action or scope in Roles.
func (p Policy) Validate() error {
	if p.Prefix != "" && !SafeKey(p.Prefix) {
		return fmt.Errorf("policy: prefix %q is not a safe key prefix (no leading \"/\", \"//\", \".\" or \"..\" segments, control characters)", p.Prefix)
	}
	for r, rules := range p.Roles {
		if got, err := roles.Parse(string(r)); err != nil {
			return fmt.Errorf("policy: %w", err)
		} else if got != r {
			return fmt.Errorf("policy: role %q: write the role none as \"\"", string(r))
		}
		for a, s := range rules {
			if err := checkRule(r, a, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkRule reports an unknown action or scope in the rules of role r.
func checkRule(r roles.Role, a Action, s Scope) error {
	if !slices.Contains(actions, a) {
		return fmt.Errorf("policy: role %s: unknown action %q (want upload, download, list, delete or manage)", r, string(a))
	}
	if s != None && s != Own && s != All {
		return fmt.Errorf("policy: role %s: action %s: unknown scope %q (want own, all or none)", r, a, string(s))
	}
	return nil
}

// ParseRules reads rules from configuration, e.g.
//
//	{"uploader": {"upload": "own", "delete": "own"}, "viewer": {"download": "all"}}
//
// Role names are those of roles.Parse ("none" or "" for roles.None);
// actions are upload, download, list, delete, manage; scopes own, all,
// none (or ""). Any other name is an error (an unknown role wraps
// roles.ErrUnknownRole). The result holds only the roles in spec, each
// with every action spec names, none included: an explicit None is what
// lets [Policy.Override] take an action away from a default.
func ParseRules(spec map[string]map[string]string) (map[roles.Role]Rules, error) {
	out := make(map[roles.Role]Rules, len(spec))
	for _, name := range slices.Sorted(maps.Keys(spec)) { // the same error every time
		r, err := roles.Parse(name)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		if _, dup := out[r]; dup {
			return nil, fmt.Errorf("policy: role %s given twice", r)
		}
		rules := Rules{}
		for _, an := range slices.Sorted(maps.Keys(spec[name])) {
			a, s := Action(an), Scope(spec[name][an])
			if s == "none" {
				s = None
			}
			if err := checkRule(r, a, s); err != nil {
				return nil, err
			}
			rules[a] = s
		}
		out[r] = rules
	}
	return out, nil
}

// SafeKey reports whether key is a key Authorize may allow at all: not
// empty, valid UTF-8, no leading "/", no "//", no "." or ".." segment, no
// control character.
func SafeKey(key string) bool {
	if key == "" || key[0] == '/' || strings.Contains(key, "//") || !utf8.ValidString(key) ||
		strings.ContainsFunc(key, unicode.IsControl) {
		return false
	}
	segs := strings.Split(key, "/")
	return !slices.Contains(segs, ".") && !slices.Contains(segs, "..")
}

// safeSegment escapes a user id into one key segment, injectively, as the
// package documentation describes ("User ids in keys"): since '_' only
// ever starts an escape, the id can be decoded back. The empty id becomes
// "_", which no other id produces.
func safeSegment(id string) string {
	if id == "" {
		return "_"
	}
	var b strings.Builder
	b.Grow(len(id))
	for i := 0; i < len(id); i++ {
		c := id[i]
		if keep(c) && !(i == 0 && c == '.') {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "_%02X", c)
	}
	return b.String()
}

func keep(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '@' || c == '-'
}
