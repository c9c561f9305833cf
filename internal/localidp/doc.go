// Package localidp is a small identity provider built into the gateway, for
// development and for edge deployments without AWS. It signs users in
// against a users file and issues tokens shaped like those of an Amazon
// Cognito user pool, so the gateway verifies them with the same code, and
// the same configuration apart from the JWKS URL and issuer, as real
// Cognito tokens. [Open] returns the [Provider] a gateway runs: users,
// keys and refresh-token records together, read at start and written only
// once used.
//
// # Users file
//
// A JSON file such as
//
//	{"users": [
//	  {"email": "demo@example.com",
//	   "password_hash": "$2a$14$...",
//	   "groups": ["uploader"],
//	   "sub": "optional-stable-id"}
//	]}
//
// password_hash is a bcrypt hash, as printed by "caddy hash-password" (the
// default algorithm; argon2id hashes are refused) or returned by
// [HashPassword], with a cost from [MinHashCost] (10) to [MaxHashCost]
// (14): cheaper hashes are cheap to crack, dearer ones let sign-in attempts
// eat the CPU. The base64 form older Caddy versions printed is accepted
// too. Emails are compared without regard to case and must be unique.
// groups, which may be omitted, become the cognito:groups claim. sub is the
// stable user id put in tokens; without it, it is [DefaultSub] of the
// email, so it changes if the email does. Subs must be unique. Unknown
// fields are errors, which catches typos such as "passwordHash".
// token_generation, a number that may be omitted (0), ends the user's
// sessions when raised: refresh tokens carry the value they were issued
// with and are refused once it differs.
//
// The file must not be writable by its group or others (the error wraps
// [ErrInsecurePermissions]): whoever can change it can add an admin. Mode
// 0600 or 0640 is right; it holds password hashes.
//
// [LoadUsers] refuses an invalid file with an error that wraps
// [ErrInvalidUsersFile] and names the user (numbered from 1) at fault.
// After that, the file is read again when it changes, at most once per
// second, on sign-in and refresh ([Users.Reload]), so users can be added,
// removed or given new passwords without a restart. Replace the file
// atomically (write a new file, then rename it over the old one), or a
// reader may catch it half written and wait for the next change.
//
// [Users.Authenticate] answers an unknown email and a wrong password alike,
// in the same time. It does not limit attempts: put a limiter (package
// ratelimit) in front of it, keyed by client address and by email.
//
// # Key directory
//
// Tokens are signed with ES256 (ECDSA P-256). The keys live in one
// directory, created with mode 0700, one private JWK per file named
// "<kid>.jwk.json" with mode 0600. As OpenSSH does with its keys, a
// directory its group or others may write to, and a key file they may read
// or write, are refused (the errors wrap [ErrInsecurePermissions]): at
// [OpenKeyStore], and at a Reload, which then keeps the keys held before. The kid is the key's RFC 7638 thumbprint
// and the member "created_at" its creation time (RFC 3339). The key created
// last is the current signing key; all keys in the directory are published
// in the JWKS. Files whose names start with "." or do not end in
// ".jwk.json" are ignored. A P-256 private JWK put there by hand is used
// too: without kid it gets its thumbprint, without created_at the file's
// modification time.
//
// [OpenKeyStore] only reads, so that checking a configuration writes
// nothing. [KeyStore.Rotate] (or [RotateDir], for a command run by an
// operator) adds a key that becomes current at once. Files are written
// under a temporary name and renamed into place, so a reader never sees
// half a key.
//
// Several gateway instances may share the directory (a shared volume;
// their clocks should agree). Each sees keys another instance or an
// operator added, or removed, at its next [KeyStore.Reload], which
// [KeyStore.Current] and [KeyStore.Keys] do once per [ReloadInterval], and
// verifying a refresh token with an unknown kid at most once per second.
//
// # Rotation and retention
//
// A replaced key stays published for [KeyStore.Retention] (default 48h)
// after the key that replaced it was created, then [KeyStore.Prune]
// deletes its file (Current and Keys call it hourly). Retention
// must be at least twice the ID and access token lifetime, which
// [Issuer.Issue] checks, so that every token signed by an old key expires
// while the key is still published, with room for verifiers that cache the
// JWKS. Verifiers should fetch the JWKS again when they see an unknown kid,
// since tokens are signed with a new key as soon as it exists.
//
// To replace a compromised key, rotate, then delete its file at once: its
// tokens stop verifying at each instance's next reload.
//
// # Tokens
//
// [Issuer.Issue] returns, as Cognito does:
//
//   - an ID token with iss, sub, aud (the client ID), token_use "id", email,
//     email_verified true, cognito:username (the sub), cognito:groups,
//     auth_time, iat, exp and jti;
//   - an access token with iss, sub, client_id, token_use "access",
//     username (the sub), cognito:groups, scope
//     "aws.cognito.signin.user.admin", auth_time, iat, exp and jti;
//   - a refresh token.
//
// cognito:groups is left out when the user has no groups, as Cognito does.
// Each header has alg ES256 and the current key's kid, and nothing else.
//
// The refresh token is a JWT too (Cognito's are opaque), signed with the
// same keys, with token_use "refresh", sub, client_id, auth_time, iat, exp
// (default 30 days), jti, a session id (sid) fixed at sign-in, the user's
// token_generation and a fingerprint of the user's password hash, so that
// removing a user, changing a password or raising token_generation ends
// their sessions within one token lifetime. With [Issuer.Revocations]
// ([Provider] keeps them in the "revoked" subdirectory of the key
// directory), refresh tokens are single-use and a reused one revokes its
// session; see [Issuer.Refresh].
//
// # Considerations
//
// A refresh token is signed by a key in the JWKS, and its signature
// verifies like that of any token. Verifiers must therefore check
// token_use ("id" or "access"), as Cognito's own documentation asks, or
// they would accept a refresh token as a bearer token. It has no aud.
//
// Refresh tokens signed by a key that has been pruned no longer verify, so
// a session left unused for longer than Retention after a rotation needs a
// new sign-in. Set Retention to the refresh token lifetime to avoid that,
// at the cost of publishing old keys for that long.
//
// ID and access tokens cannot be revoked before they expire (one token
// lifetime) except by deleting the signing key; revocation ends the
// session's refresh tokens. Two clients that share a refresh token and
// refresh at the same time end their own session; each should hold its
// own sign-in.
//
// # Errors
//
// Errors wrap the sentinel errors below where stated; errors from the file
// system wrap the [os] error.
package localidp

import "errors"

var (
	// ErrInvalidCredentials is returned by Authenticate for an unknown email
	// or a wrong password.
	ErrInvalidCredentials = errors.New("localidp: invalid email or password")

	// ErrInvalidRefreshToken is wrapped by the errors Refresh returns for a
	// refresh token it does not accept; the message says why.
	ErrInvalidRefreshToken = errors.New("localidp: invalid refresh token")

	// ErrInvalidUsersFile is wrapped by the errors about the content of the
	// users file.
	ErrInvalidUsersFile = errors.New("localidp: invalid users file")

	// ErrInvalidKeyFile is wrapped by the errors about a file in the key
	// directory.
	ErrInvalidKeyFile = errors.New("localidp: invalid key file")

	// ErrNoKeys is wrapped by the error Reload returns when the key
	// directory holds no key.
	ErrNoKeys = errors.New("localidp: no keys")

	// ErrInsecurePermissions is wrapped by the errors about a users file,
	// key directory or key file that people other than its owner may
	// change, or, for a key, read.
	ErrInsecurePermissions = errors.New("localidp: insecure file permissions")
)
