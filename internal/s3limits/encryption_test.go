package s3limits

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestEncryptionRequestFields(t *testing.T) {
	kms := Encryption{Mode: types.ServerSideEncryptionAwsKms, KMSKeyID: "alias/k", BucketKey: true, Context: "e30="}
	tests := []struct {
		name                 string
		e                    Encryption
		mode                 types.ServerSideEncryption
		key, ctx             string
		bucketKey, wantUnset bool
	}{
		{name: "none", e: Encryption{}, wantUnset: true},
		{name: "AES256 ignores KMS settings", e: Encryption{Mode: types.ServerSideEncryptionAes256, KMSKeyID: "alias/k", BucketKey: true},
			mode: types.ServerSideEncryptionAes256, wantUnset: true},
		{name: "aws:kms", e: kms, mode: types.ServerSideEncryptionAwsKms, key: "alias/k", ctx: "e30=", bucketKey: true},
		{name: "aws:kms:dsse", e: Encryption{Mode: types.ServerSideEncryptionAwsKmsDsse, KMSKeyID: "k"},
			mode: types.ServerSideEncryptionAwsKmsDsse, key: "k"},
		{name: "aws:kms with the managed key", e: Encryption{Mode: types.ServerSideEncryptionAwsKms},
			mode: types.ServerSideEncryptionAwsKms, wantUnset: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode, key, bucketKey, ctx := tt.e.RequestFields()
			if mode != tt.mode {
				t.Errorf("mode %q, want %q", mode, tt.mode)
			}
			if tt.wantUnset {
				if key != nil || bucketKey != nil || ctx != nil {
					t.Errorf("KMS fields set: %v %v %v", key, bucketKey, ctx)
				}
				return
			}
			if aws.ToString(key) != tt.key || aws.ToString(ctx) != tt.ctx || aws.ToBool(bucketKey) != tt.bucketKey {
				t.Errorf("got key %q ctx %q bucketKey %v", aws.ToString(key), aws.ToString(ctx), aws.ToBool(bucketKey))
			}
		})
	}
}
