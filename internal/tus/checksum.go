package tus

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"hash/crc32"
	"net/http"
	"strings"
)

// StatusChecksumMismatch is tus's answer to a PATCH whose body does not
// match its Upload-Checksum.
const StatusChecksumMismatch = 460

// ChecksumAlgorithms is Tus-Checksum-Algorithm: the algorithms an
// Upload-Checksum may name. crc32 is IEEE CRC-32, its 4 bytes big-endian.
const ChecksumAlgorithms = "sha1,md5,crc32,sha256,sha512"

var checksumHashes = map[string]func() hash.Hash{
	"sha1":   sha1.New,
	"md5":    md5.New,
	"crc32":  func() hash.Hash { return crc32.NewIEEE() },
	"sha256": sha256.New,
	"sha512": sha512.New,
}

// checksum is a parsed Upload-Checksum: the digest a PATCH body must have.
type checksum struct {
	alg  string
	want []byte
	hash hash.Hash
}

// parseChecksum parses "<algorithm> <base64 digest>"; nil if v is empty.
func parseChecksum(v string) (*checksum, error) {
	if v == "" {
		return nil, nil
	}
	alg, digest, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return nil, fail(http.StatusBadRequest, "Upload-Checksum must be <algorithm> <base64 digest>")
	}
	newHash, ok := checksumHashes[alg]
	if !ok {
		return nil, fail(http.StatusBadRequest, "Upload-Checksum algorithm %q is not one of %s", alg, ChecksumAlgorithms)
	}
	want, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(digest))
	if err != nil {
		return nil, fail(http.StatusBadRequest, "Upload-Checksum digest is not base64: %v", err)
	}
	h := newHash()
	if len(want) != h.Size() {
		return nil, fail(http.StatusBadRequest, "Upload-Checksum %s digest is %d bytes, want %d", alg, len(want), h.Size())
	}
	return &checksum{alg: alg, want: want, hash: h}, nil
}

// matches reports whether the bytes written to c.hash have the digest.
func (c *checksum) matches() bool { return bytes.Equal(c.hash.Sum(nil), c.want) }
