//go:build integration

package integration_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// The gateway's default integrity check relies on the S3 server verifying
// a multipart upload's FULL_OBJECT CRC32C on completion: a wrong value must
// be refused. (If a server upgrade drops that, this fails.)
func TestS3VerifiesFullObjectChecksum(t *testing.T) {
	ctx := context.Background()
	c := env.S3At(env.S3Endpoint, env.GatewayAccess, env.GatewaySecret)
	key := testPrefix(t) + "full-object.bin"
	part := bytes.Repeat([]byte("x"), 5*mib)
	for _, tt := range []struct {
		name, sum string
		ok        bool
	}{
		{"right value", harness.CRC32C(append(bytes.Clone(part), part...)), true},
		{"wrong value", harness.CRC32C(part), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			created, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
				Bucket: &env.Bucket, Key: &key, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c, ChecksumType: types.ChecksumTypeFullObject,
				ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: &env.KMSKeyID,
			})
			if err != nil {
				t.Fatalf("CreateMultipartUpload: %v", err)
			}
			defer c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &env.Bucket, Key: &key, UploadId: created.UploadId})
			var parts []types.CompletedPart
			for n := int32(1); n <= 2; n++ {
				out, err := c.UploadPart(ctx, &s3.UploadPartInput{
					Bucket: &env.Bucket, Key: &key, UploadId: created.UploadId, PartNumber: aws.Int32(n),
					Body: bytes.NewReader(part), ChecksumCRC32C: aws.String(harness.CRC32C(part)),
				})
				if err != nil {
					t.Fatalf("UploadPart %d: %v", n, err)
				}
				parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag, ChecksumCRC32C: out.ChecksumCRC32C})
			}
			_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
				Bucket: &env.Bucket, Key: &key, UploadId: created.UploadId,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
				ChecksumType:    types.ChecksumTypeFullObject, ChecksumCRC32C: aws.String(tt.sum),
			})
			var ae smithy.APIError
			switch {
			case tt.ok && err != nil:
				t.Fatalf("CompleteMultipartUpload with the right full-object CRC32C: %v", err)
			case !tt.ok && (!errors.As(err, &ae) || ae.ErrorCode() != "BadDigest"):
				t.Fatalf("CompleteMultipartUpload with a wrong full-object CRC32C: %v, want BadDigest", err)
			}
		})
	}
}
