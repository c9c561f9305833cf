// Package policy decides which user may do what on which object keys. It is
// pure: no I/O, no clock, safe for concurrent use once built.
//
// # Model
//
// Every object the gateway manages lives under one base prefix
// (Policy.Prefix, e.g. "files/"). Each user owns a sub-prefix of it:
//
//	<Prefix>users/<escaped user id>/
//
// A role gets, for each [Action], a [Scope]:
//
//	scope   the action is allowed on
//	none    nothing (the default for anything not listed)
//	own     keys under the user's own prefix ([Policy.OwnerPrefix])
//	all     every key under Prefix, including other users' prefixes
//
// # Default rules
//
// [Default] builds this table:
//
//	role       upload  download  list  delete  manage
//	admin      all     all       all   all     all
//	uploader   own     own       own   own     own
//	viewer     -       all       all   -       -
//	none       -       -         -     -       -
//
// "manage" covers housekeeping of a user's uploads (aborting multipart
// uploads, listing their parts, tagging). The rules can be changed in
// configuration; [ParseRules] reads the JSON form and [Policy.Override]
// applies it over the defaults, action by action (scope none takes an
// action away):
//
//	{"uploader": {"upload": "own", "download": "own", "list": "own"},
//	 "viewer":   {"download": "all", "list": "all"}}
//
// Roles, actions and scopes are matched exactly (lowercase). Unknown names
// are errors, never ignored, so a typo cannot silently widen or narrow
// access. Anything a role's rules do not mention is denied.
//
// # Key safety
//
// A key is allowed when it starts with the allowed prefix, compared as plain
// strings. No path cleaning is done, because S3 keys are not paths, but
// some S3 servers (SeaweedFS stores objects in a file tree), proxies and
// client libraries do treat them as paths. So a key that could mean
// something else after such a cleaning is denied outright, whatever the
// role:
//
//   - an empty key, or a key starting with "/";
//   - a key containing "//", or a "." or ".." segment ("a/../b", "a/./b",
//     "a/..");
//   - a key that is not valid UTF-8 or contains a control character
//     (U+0000–U+001F, U+007F–U+009F).
//
// # User ids in keys
//
// The user id (use the identity provider's immutable subject, "sub", not an
// e-mail address or a user name that can be reassigned) is written into the
// key with an escaping that is injective: two different ids always get two
// different prefixes, and neither prefix is a prefix of the other. Lowercase
// ASCII letters, digits, '.', '@' and '-' are kept; every other byte, '_'
// and uppercase letters included, becomes '_' followed by two uppercase hex
// digits; a leading '.' is escaped too, so that no segment is "." or "..":
//
//	alice              -> users/alice/
//	user@example.com   -> users/user@example.com/
//	Alice              -> users/_41lice/
//	a/b                -> users/a_2Fb/
//	a_b                -> users/a_5Fb/
//	..                 -> users/_2E./
//	é                  -> users/_C3_A9/
//
// A simpler mapping of unwanted characters to '_' would give "a/b" and
// "a_b" the same prefix, and so the same files. Uppercase letters are
// escaped because some S3 servers match policy resources without regard to
// case (SeaweedFS does, for STS session policies: a session allowed
// "users/alice/*" may also write "users/ALICE/x"). With the escaping, two
// owner prefixes differ even when case is ignored, so such a server still
// keeps users apart. Cognito subjects (lowercase UUIDs) are kept as they are.
// An escaped id can be up to three times longer than the id; S3 keys are
// limited to 1024 bytes.
//
// The empty id never owns anything: "own" actions are denied for it
// (its OwnerPrefix, "users/_/", cannot be produced by any other id).
//
// # Errors
//
// [Policy.Authorize] and [Policy.ListPrefix] return an error wrapping
// [ErrDenied] (HTTP 403) when the action is not allowed. Its text names the
// action and the scope, never the key, so it can be shown to the client.
// [ParseRules] and [Policy.Validate] report configuration errors (unknown
// role wraps roles.ErrUnknownRole).
package policy
