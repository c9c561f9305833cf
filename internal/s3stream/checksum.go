package s3stream

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/internal/crccombine"
)

var (
	tableCRC32C    = crc32.MakeTable(crc32.Castagnoli)
	tableCRC64NVME = crc64.MakeTable(crccombine.CRC64NVME)
)

// checksum is one S3 checksum algorithm: how to hash a part, and whether
// (and how) part values combine into the value of the whole object.
type checksum struct {
	alg types.ChecksumAlgorithm
	new func() hash.Hash
	// poly and width describe a CRC; width 0 means the algorithm is not a
	// CRC, so S3 only knows a composite value for multipart objects.
	poly  uint64
	width uint
}

func checksumFor(alg types.ChecksumAlgorithm) (checksum, error) {
	switch alg {
	case types.ChecksumAlgorithmCrc32c:
		return checksum{alg: alg, new: func() hash.Hash { return crc32.New(tableCRC32C) }, poly: crccombine.CRC32C, width: 32}, nil
	case types.ChecksumAlgorithmCrc32:
		return checksum{alg: alg, new: func() hash.Hash { return crc32.NewIEEE() }, poly: crccombine.CRC32, width: 32}, nil
	case types.ChecksumAlgorithmCrc64nvme:
		return checksum{alg: alg, new: func() hash.Hash { return crc64.New(tableCRC64NVME) }, poly: crccombine.CRC64NVME, width: 64}, nil
	case types.ChecksumAlgorithmSha1:
		return checksum{alg: alg, new: sha1.New}, nil
	case types.ChecksumAlgorithmSha256:
		return checksum{alg: alg, new: sha256.New}, nil
	}
	return checksum{}, fmt.Errorf("s3stream: unknown checksum algorithm %q", alg)
}

// fullObject reports whether S3 can verify a full-object value of a
// multipart upload with this algorithm (ChecksumType FULL_OBJECT).
func (c checksum) fullObject() bool { return c.width > 0 }

// tag is the name of the object tag that holds the full-object value.
func (c checksum) tag() string { return strings.ToLower(string(c.alg)) }

// value decodes a big-endian CRC sum.
func (c checksum) value(sum []byte) uint64 {
	if c.width == 32 {
		return uint64(binary.BigEndian.Uint32(sum))
	}
	return binary.BigEndian.Uint64(sum)
}

// encode is the base64 form S3 uses of a CRC value.
func (c checksum) encode(v uint64) string {
	if c.width == 32 {
		return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, uint32(v)))
	}
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, v))
}

// combine returns the CRC of A followed by B (see [crccombine.Combine]).
func (c checksum) combine(crcA, crcB uint64, lenB int64) uint64 {
	return crccombine.Combine(c.poly, c.width, crcA, crcB, lenB)
}

// setChecksum sets the checksum field of alg in an UploadPart or PutObject input.
func setChecksum(alg types.ChecksumAlgorithm, v string, crc32, crc32c, crc64nvme, sha1, sha256 **string) {
	*checksumField(alg, crc32, crc32c, crc64nvme, sha1, sha256) = &v
}

// checksumField returns the field of alg among the checksum fields of an
// input or output (a field nobody reads for an unknown algorithm).
func checksumField(alg types.ChecksumAlgorithm, crc32, crc32c, crc64nvme, sha1, sha256 **string) **string {
	switch alg {
	case types.ChecksumAlgorithmCrc32:
		return crc32
	case types.ChecksumAlgorithmCrc32c:
		return crc32c
	case types.ChecksumAlgorithmCrc64nvme:
		return crc64nvme
	case types.ChecksumAlgorithmSha1:
		return sha1
	case types.ChecksumAlgorithmSha256:
		return sha256
	}
	return new(*string)
}
