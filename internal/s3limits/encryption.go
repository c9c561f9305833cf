package s3limits

import (
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
