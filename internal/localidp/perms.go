package localidp

import (
	"fmt"
	"io/fs"
	"runtime"
)

// Permission bits that must be clear, checked as OpenSSH checks its own
// files. On Windows, where they mean nothing, nothing is checked.
const (
	// A users file others can change lets them add an admin.
	usersFileForbidden fs.FileMode = 0o022
	// A key directory others can write to lets them add a signing key, or
	// remove one, or mark a revoked session as live again.
	dirForbidden fs.FileMode = 0o022
	// A private key others can read lets them mint any token.
	keyFileForbidden fs.FileMode = 0o077
)

// checkPerm returns an error wrapping [ErrInsecurePermissions] if info,
// the file or directory at path, has any of the forbidden permission bits.
// what names it in the message ("users file"), and why says what the bits
// would allow.
func checkPerm(path string, info fs.FileInfo, forbidden fs.FileMode, what, why string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	mode := info.Mode().Perm()
	bad := mode & forbidden
	if bad == 0 {
		return nil
	}
	var who string
	switch {
	case bad&0o070 != 0 && bad&0o007 != 0:
		who = "group and others"
	case bad&0o070 != 0:
		who = "its group"
	default:
		who = "others"
	}
	access := "writable"
	if bad&0o044 != 0 {
		access = "readable"
		if bad&0o022 != 0 {
			access = "readable and writable"
		}
	}
	return fmt.Errorf("%w: %s %s is %s by %s (mode %04o): %s; run chmod %04o %s",
		ErrInsecurePermissions, what, path, access, who, mode, why, mode&^forbidden, path)
}
