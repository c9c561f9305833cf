//go:build integration

package integration_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// newBucket creates a bucket of the test's own, named prefix-<random>, and
// empties and deletes it when the test ends. It returns once the bucket
// takes writes: SeaweedFS grows a volume for a new bucket's collection on
// its first write and answers 500 ("volume growth in progress") until then,
// which on a loaded machine can outlast a browser's upload.
func newBucket(t *testing.T, prefix string) string {
	t.Helper()
	ctx := context.Background()
	client := env.S3()
	bucket := fmt.Sprintf("%s-%d", prefix, rand.Uint32())
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("CreateBucket %s: %v", bucket, err)
	}
	t.Cleanup(func() { deleteBucket(client, bucket) })
	probe := "newbucket-probe"
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &probe, Body: strings.NewReader("x")})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bucket %s takes no writes after 60 s: %v", bucket, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &probe}); err != nil {
		t.Fatalf("deleting the probe object: %v", err)
	}
	return bucket
}
