package s3limits

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestEncryptionRequestFields(t *testing.T) {
	t.Parallel()
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
			t.Parallel()
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

func TestEncryptionHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    Encryption
		want http.Header
	}{
		{"none", Encryption{}, http.Header{}},
		{"AES256 ignores KMS settings", Encryption{Mode: types.ServerSideEncryptionAes256, KMSKeyID: "alias/k", BucketKey: true},
			http.Header{"X-Amz-Server-Side-Encryption": {"AES256"}}},
		{"aws:kms", Encryption{Mode: types.ServerSideEncryptionAwsKms, KMSKeyID: "alias/k", BucketKey: true, Context: "e30="},
			http.Header{
				"X-Amz-Server-Side-Encryption":                    {"aws:kms"},
				"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id":     {"alias/k"},
				"X-Amz-Server-Side-Encryption-Bucket-Key-Enabled": {"true"},
				"X-Amz-Server-Side-Encryption-Context":            {"e30="},
			}},
		{"aws:kms with the managed key", Encryption{Mode: types.ServerSideEncryptionAwsKms},
			http.Header{"X-Amz-Server-Side-Encryption": {"aws:kms"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.e.Headers(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Headers() = %v, want %v", got, tt.want)
			}
		})
	}
}
