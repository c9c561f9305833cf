// Package roles maps an authenticated identity to one of the gateway's
// roles: none, viewer, uploader or admin.
//
// # Configuration
//
// A [Mapper] reads one claim of a verified token (by default
// "cognito:groups", the Cognito user pool groups) and looks each group up
// in Groups. With the zero Mapper:
//
//	admin, admins       -> admin
//	uploader, uploaders -> uploader
//	viewer, viewers     -> viewer
//	anything else       -> ignored
//
// The claim may be a JSON array of strings or a single string holding
// several groups separated by spaces and/or commas ("admins, viewers"),
// as some issuers put roles in a space-separated "scope"-like claim.
//
// [NewMapper] builds a Mapper from a configuration's names.
//
// # Resolution
//
// The highest role among the user's mapped groups wins. Default is the
// role of a user whose groups map to nothing (no claim, empty claim, only
// unknown groups). It is also a floor: a group mapped to a lower role
// than Default does not lower it. The zero Default is None, so unknown
// users are denied.
//
// # Considerations
//
// Group names are matched exactly, case and all: "Admins" does not match
// "admins", and no whitespace is trimmed from array elements. Folding case
// would hand a role to every group whose name differs only in case, which
// may be managed by someone else. List every spelling you want in Groups.
package roles

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Role is a gateway role. Roles are ordered: None < Viewer < Uploader < Admin.
type Role string

// The roles, from least to most privileged.
const (
	None     Role = ""
	Viewer   Role = "viewer"
	Uploader Role = "uploader"
	Admin    Role = "admin"
)

// DefaultClaim is the claim Mapper reads when Claim is empty.
const DefaultClaim = "cognito:groups"

// ErrUnknownRole is returned by Parse and Mapper.Validate for a name that
// is not a role.
var ErrUnknownRole = errors.New("roles: unknown role")

// Rank orders roles: None 0, Viewer 1, Uploader 2, Admin 3. Any other
// value ranks 0, like None.
func (r Role) Rank() int { return max(slices.Index(order, r), 0) }

// order lists the roles by rank.
var order = []Role{None, Viewer, Uploader, Admin}

// AtLeast reports whether r grants at least what o grants.
func (r Role) AtLeast(o Role) bool { return r.Rank() >= o.Rank() }

// String returns the role name, "none" for None.
func (r Role) String() string {
	if r == None {
		return "none"
	}
	return string(r)
}

// Parse parses a role name as written in configuration: "viewer",
// "uploader", "admin", or "none" (or "") for None. Matching is exact.
// Other names return an error wrapping ErrUnknownRole.
func Parse(s string) (Role, error) {
	switch r := Role(s); r {
	case Viewer, Uploader, Admin, None:
		return r, nil
	}
	if s == "none" {
		return None, nil
	}
	return None, fmt.Errorf("%w %q (want viewer, uploader, admin or none)", ErrUnknownRole, s)
}

// DefaultGroups returns the group mapping used when Mapper.Groups is nil.
func DefaultGroups() map[string]Role {
	return map[string]Role{
		"admin": Admin, "admins": Admin,
		"uploader": Uploader, "uploaders": Uploader,
		"viewer": Viewer, "viewers": Viewer,
	}
}

// defaultGroups backs a nil Mapper.Groups; it is never handed out.
var defaultGroups = DefaultGroups()

// Mapper resolves the role of a user from the claims of a verified token.
// The zero value is ready to use. A Mapper is read-only, hence safe for
// concurrent use.
type Mapper struct {
	// Claim names the claim holding the groups or roles: an array of
	// strings, or a string of names separated by spaces or commas.
	// Default "cognito:groups".
	Claim string

	// Groups maps a group name, matched exactly, to a role. Nil means
	// DefaultGroups(); an empty non-nil map maps nothing, so every user
	// gets Default.
	Groups map[string]Role

	// Default is the role of a user none of whose groups maps to a role,
	// and the least role anyone gets. Default None: deny.
	Default Role
}

// NewMapper returns the Mapper of a configuration's names: claim, groups
// (group → role name; empty for DefaultGroups) and def, the default role's
// name. An unknown role name is an error wrapping ErrUnknownRole.
func NewMapper(claim string, groups map[string]string, def string) (Mapper, error) {
	m := Mapper{Claim: claim}
	var err error
	if m.Default, err = Parse(def); err != nil {
		return Mapper{}, fmt.Errorf("default role: %w", err)
	}
	if len(groups) > 0 {
		m.Groups = make(map[string]Role, len(groups))
		for g, name := range groups {
			if m.Groups[g], err = Parse(name); err != nil {
				return Mapper{}, fmt.Errorf("group %q: %w", g, err)
			}
		}
	}
	return m, nil
}

// Validate reports a Default or Groups value that is not a known role.
func (m Mapper) Validate() error {
	if _, err := Parse(string(m.Default)); err != nil {
		return fmt.Errorf("default role: %w", err)
	}
	for g, r := range m.Groups {
		if _, err := Parse(string(r)); err != nil {
			return fmt.Errorf("group %q: %w", g, err)
		}
	}
	return nil
}

// Resolve returns the highest role granted by the user's groups (at least
// Default), and the groups found in the claim, in order, without
// duplicates or empty names, whether they map to a role or not (nil when
// there are none).
func (m Mapper) Resolve(claims map[string]any) (Role, []string) {
	groups := m.Groups
	if groups == nil {
		groups = defaultGroups
	}
	found := groupsOf(claims[cmp.Or(m.Claim, DefaultClaim)])
	best := m.Default
	for _, g := range found {
		if r, ok := groups[g]; ok && r.Rank() > best.Rank() {
			best = r
		}
	}
	return best, found
}

// groupsOf reads a claim value as a list of group names. Values of other
// types, and non-string array elements, are ignored.
func groupsOf(v any) []string {
	var names []string
	switch v := v.(type) {
	case string:
		names = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				names = append(names, s)
			}
		}
	case []string:
		names = v
	}
	var out []string
	for _, n := range names {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
