package passfields

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strings"
)

// Placeholders of the digests a template may use.
const (
	MD5Placeholder   = "{upload.md5}"
	CRC32Placeholder = "{upload.crc32}"
)

// Digests computes the MD5 and the CRC32 (IEEE) of a file as it is read,
// each only when asked for. Its zero value computes nothing.
type Digests struct {
	md5   hash.Hash
	crc32 hash.Hash32
}

// Needed reports which digests the templates use.
func Needed(templates []string) (md5, crc32 bool) {
	for _, t := range templates {
		md5 = md5 || strings.Contains(t, MD5Placeholder)
		crc32 = crc32 || strings.Contains(t, CRC32Placeholder)
	}
	return md5, crc32
}

// NewDigests returns Digests computing the digests asked for, nil when none
// is.
func NewDigests(withMD5, withCRC32 bool) *Digests {
	if !withMD5 && !withCRC32 {
		return nil
	}
	d := new(Digests)
	if withMD5 {
		d.md5 = md5.New()
	}
	if withCRC32 {
		d.crc32 = crc32.NewIEEE()
	}
	return d
}

// Reader returns r with every byte read from it added to the digests. A
// nil *Digests returns r.
func (d *Digests) Reader(r io.Reader) io.Reader {
	if d == nil {
		return r
	}
	var ws []io.Writer
	if d.md5 != nil {
		ws = append(ws, d.md5)
	}
	if d.crc32 != nil {
		ws = append(ws, d.crc32)
	}
	return io.TeeReader(r, io.MultiWriter(ws...))
}

// MD5 returns the lower-case hex MD5 of what was read, "" when it is not
// computed.
func (d *Digests) MD5() string {
	if d == nil || d.md5 == nil {
		return ""
	}
	return hex.EncodeToString(d.md5.Sum(nil))
}

// CRC32 returns the CRC32 (IEEE) of what was read as 8 lower-case hex
// digits, as nginx-upload-module's $upload_file_crc32, "" when it is not
// computed.
func (d *Digests) CRC32() string {
	if d == nil || d.crc32 == nil {
		return ""
	}
	return fmt.Sprintf("%08x", d.crc32.Sum32())
}
