//go:build integration

package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// An instance crashed mid-upload and left a multipart upload behind; the
// janitor of a running gateway aborts it once it is older than max_age and
// reports it on /metrics. (max_age cannot be below a minute, so this test
// waits that long.)
func TestGatewayJanitorAbortsOrphans(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the janitor's one-minute minimum age")
	}
	prefix := testPrefix(t)
	ctx := context.Background()
	created, err := env.S3().CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &env.Bucket, Key: aws.String(prefix + "crashed-instance.bin"),
		ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: &env.KMSKeyID,
	})
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{"janitor {\n\t\t\tmax_age 1m\n\t\t\tinterval 3s\n\t\t}"}}.block())

	deadline := time.Now().Add(100 * time.Second)
	for {
		out, err := env.S3().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &env.Bucket, Prefix: &prefix})
		if err == nil && len(out.Uploads) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the orphan %s was not aborted (uploads %v, err %v)", aws.ToString(created.UploadId), out, err)
		}
		time.Sleep(2 * time.Second)
	}
	if got := scrapeMetric(t, gw, `upload_gateway_orphans_aborted_total{prefix="`+prefix+`"}`); got != 1 {
		t.Errorf("orphans_aborted_total = %v, want 1", got)
	}
	assertNothingLeft(t, prefix)
}
