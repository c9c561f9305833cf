package s3limits

import (
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Encryption is the server-side encryption of new objects: the one
// definition every path that writes objects uses.
type Encryption struct {
	// Mode is types.ServerSideEncryptionAwsKms, types.ServerSideEncryptionAwsKmsDsse,
	// types.ServerSideEncryptionAes256 or "" for none (the bucket default).
	Mode types.ServerSideEncryption
	// KMSKeyID is the key id, ARN or alias for aws:kms; empty means the
	// account's AWS managed key for S3.
	KMSKeyID string
	// BucketKey enables an S3 Bucket Key for aws:kms.
	BucketKey bool
	// Context is the base64-encoded JSON KMS encryption context, or "".
	Context string
}

// RequestFields returns e as the fields of a PutObject or
// CreateMultipartUpload input: the mode, and for the KMS modes the key id,
// Bucket Key flag and encryption context (nil where unset).
func (e Encryption) RequestFields() (mode types.ServerSideEncryption, keyID *string, bucketKey *bool, context *string) {
	if e.Mode != types.ServerSideEncryptionAwsKms && e.Mode != types.ServerSideEncryptionAwsKmsDsse {
		return e.Mode, nil, nil, nil
	}
	if e.KMSKeyID != "" {
		keyID = aws.String(e.KMSKeyID)
	}
	if e.BucketKey {
		bucketKey = aws.Bool(true)
	}
	if e.Context != "" {
		context = aws.String(e.Context)
	}
	return e.Mode, keyID, bucketKey, context
}

// Headers returns e as the request headers S3 reads it from (for requests
// signed ahead, such as presigned PUTs and POST policies): the same fields
// as [Encryption.RequestFields], and no header at all for the bucket
// default.
func (e Encryption) Headers() http.Header {
	h := http.Header{}
	mode, keyID, bucketKey, context := e.RequestFields()
	if mode == "" {
		return h
	}
	h.Set("X-Amz-Server-Side-Encryption", string(mode))
	if keyID != nil {
		h.Set("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id", *keyID)
	}
	if bucketKey != nil {
		h.Set("X-Amz-Server-Side-Encryption-Bucket-Key-Enabled", "true")
	}
	if context != nil {
		h.Set("X-Amz-Server-Side-Encryption-Context", *context)
	}
	return h
}
