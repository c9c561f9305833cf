// Package s3limits is the one home of the rules for the objects the gateway
// writes: S3's object limits, the user metadata names the gateway reserves
// for itself, and how the configured server-side encryption becomes request
// fields ([Encryption]). Every path that stores an object (the streaming
// gateway, the file API, presigned URLs and forms) uses these, so a limit is
// never counted two ways.
//
// # User metadata
//
// S3 limits the user metadata of an object (the x-amz-meta-* headers) to
// [MaxMetadataSize] bytes: the sum of the lengths of every name (without
// the "x-amz-meta-" prefix) and every value. Some names are written by the
// gateway after the caller has built the metadata: the SHA-256 of the body
// and the write id of the streaming uploader. [CheckMetadata] takes the
// bytes still to come, so a request that would cross the limit once they
// are added is refused before anything is sent to S3.
package s3limits

import (
	"errors"
	"fmt"
)

// Size limits of S3 objects.
const (
	// MaxKeyLen is the longest object key, in bytes.
	MaxKeyLen = 1024
	// MinPartSize is the smallest part of a multipart upload, the last part
	// excepted.
	MinPartSize int64 = 5 << 20
	// MaxPartSize is the largest part of a multipart upload.
	MaxPartSize int64 = 5 << 30
	// MaxParts is the highest part number of a multipart upload.
	MaxParts = 10000
	// MaxObjectSize is the largest object: 5 TiB.
	MaxObjectSize int64 = 5 << 40
	// MaxPutObjectSize is the largest body of a single PUT or POST.
	MaxPutObjectSize int64 = 5 << 30
	// MaxMetadataSize is the limit on user metadata: the names and values
	// of all x-amz-meta-* headers together, in bytes.
	MaxMetadataSize = 2048
)

// The user metadata names the gateway writes. Clients cannot set them.
const (
	// MetaOriginalName is the file name as the client sent it.
	MetaOriginalName = "original-name"
	// MetaSHA256 is the hex SHA-256 of the body.
	MetaSHA256 = "sha256"
	// MetaSize is the size of the body (a tag; reserved as metadata too).
	MetaSize = "size"
	// MetaUploadedBy is the id of the user who uploaded the object.
	MetaUploadedBy = "uploaded-by"
	// MetaUserRole is that user's role.
	MetaUserRole = "user-role"
	// MetaField is the form field the file came from.
	MetaField = "field"
	// MetaWriteID is a random id per write of the streaming uploader, to
	// recognise its own objects when it cleans up after an ambiguous
	// failure.
	MetaWriteID = "gateway-write-id"
)

const (
	// SHA256HexLen is the length of a hex SHA-256 digest.
	SHA256HexLen = 64
	// WriteIDLen is the length of a [MetaWriteID] value (12 random bytes in
	// hex).
	WriteIDLen = 24
	// UploaderMetadataSize is what the streaming uploader adds to the
	// metadata it is given: [MetaSHA256] and [MetaWriteID] with their
	// values.
	UploaderMetadataSize = len(MetaSHA256) + SHA256HexLen + len(MetaWriteID) + WriteIDLen
)

// reserved are the names of the gateway's own metadata.
var reserved = map[string]bool{
	MetaOriginalName: true, MetaSHA256: true, MetaSize: true, MetaUploadedBy: true,
	MetaUserRole: true, MetaField: true, MetaWriteID: true,
}

// Reserved reports whether a lower-case metadata name is one the gateway
// writes itself.
func Reserved(name string) bool { return reserved[name] }

// ErrMetadataTooLarge means the user metadata would exceed
// [MaxMetadataSize] bytes.
var ErrMetadataTooLarge = errors.New("metadata exceeds 2 KiB")

// MetadataSize is the size of m as S3 counts it: names and values.
func MetadataSize(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	return n
}

// CheckMetadata returns an error wrapping [ErrMetadataTooLarge] when m plus
// reserve bytes still to be added (names and values, e.g.
// [UploaderMetadataSize]) exceed [MaxMetadataSize]. Names in m that the
// reserve covers are not counted twice: the caller must not put them in m.
func CheckMetadata(m map[string]string, reserve int) error {
	if n := MetadataSize(m) + reserve; n > MaxMetadataSize {
		return fmt.Errorf("%w: %d bytes of names and values, more than %d", ErrMetadataTooLarge, n, MaxMetadataSize)
	}
	return nil
}
