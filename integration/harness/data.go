package harness

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"hash/crc32"
	"io"
	"math/rand/v2"
)

// RandomReader produces n deterministic pseudo-random bytes without holding
// them in memory, and hashes what it produced.
type RandomReader struct {
	rng  *rand.ChaCha8
	left int64
	sum  hash.Hash
	crc  uint32
}

// NewRandomReader returns a reader of n bytes derived from seed.
func NewRandomReader(seed uint64, n int64) *RandomReader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return &RandomReader{rng: rand.NewChaCha8(s), left: n, sum: sha256.New()}
}

func (r *RandomReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, _ := r.rng.Read(p)
	r.left -= int64(n)
	r.sum.Write(p[:n])
	r.crc = crc32.Update(r.crc, castagnoli, p[:n])
	return n, nil
}

// SHA256 returns the hex SHA-256 of the bytes read so far.
func (r *RandomReader) SHA256() string { return hex.EncodeToString(r.sum.Sum(nil)) }

// CRC32C returns the base64 CRC32C of the bytes read so far, as S3 shows it.
func (r *RandomReader) CRC32C() string { return crc32cString(r.crc) }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C returns the base64 CRC32C of b, as S3 shows it.
func CRC32C(b []byte) string { return crc32cString(crc32.Checksum(b, castagnoli)) }

func crc32cString(v uint32) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, v))
}

// SHA256Of hashes a reader.
func SHA256Of(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}
