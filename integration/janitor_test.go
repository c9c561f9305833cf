//go:build integration

package integration_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/internal/janitor"
)

// createOrphans starts one SSE-KMS multipart upload per entry of partSizes
// under prefix, uploads the parts of that entry, and returns the keys.
func createOrphans(t *testing.T, prefix string, partSizes ...[]int64) []string {
	t.Helper()
	ctx := context.Background()
	c := env.S3()
	var keys []string
	for i, sizes := range partSizes {
		key := prefix + "orphan-" + string(rune('a'+i))
		up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket: &env.Bucket, Key: aws.String(key),
			ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(env.KMSKeyID),
		})
		if err != nil {
			t.Fatalf("CreateMultipartUpload %s: %v", key, err)
		}
		for n, size := range sizes {
			_, err := c.UploadPart(ctx, &s3.UploadPartInput{
				Bucket: &env.Bucket, Key: aws.String(key), UploadId: up.UploadId,
				PartNumber: aws.Int32(int32(n + 1)), Body: bytes.NewReader(make([]byte, size)),
			})
			if err != nil {
				t.Fatalf("UploadPart %d of %s: %v", n+1, key, err)
			}
		}
		keys = append(keys, key)
	}
	return keys
}

// listUploads returns the keys of the multipart uploads under prefix, and
// logs what S3 says about them (Initiated and part sizes).
func listUploads(t *testing.T, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	out, err := env.S3().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &env.Bucket, Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatalf("ListMultipartUploads %s: %v", prefix, err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
		parts, err := env.S3().ListParts(ctx, &s3.ListPartsInput{Bucket: &env.Bucket, Key: u.Key, UploadId: u.UploadId})
		if err != nil {
			t.Fatalf("ListParts %s: %v", aws.ToString(u.Key), err)
		}
		var sizes []int64
		for _, p := range parts.Parts {
			sizes = append(sizes, aws.ToInt64(p.Size))
		}
		t.Logf("upload %s: Initiated %v, part sizes %v", aws.ToString(u.Key), u.Initiated, sizes)
	}
	slices.Sort(keys)
	return keys
}

// newJanitor returns a janitor of the test bucket that sees the uploads
// under prefix as orphans: they are a few seconds old, and its clock runs two
// hours ahead with a MaxAge of one hour.
func newJanitor(t *testing.T, prefix string, dryRun bool) *janitor.Janitor {
	t.Helper()
	j, err := janitor.New(env.S3(), janitor.Options{
		Bucket:   env.Bucket,
		Prefixes: []string{prefix},
		MaxAge:   time.Hour,
		DryRun:   dryRun,
		Now:      func() time.Time { return time.Now().Add(2 * time.Hour) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestJanitorAbortsOrphanedMultipartUploads(t *testing.T) {
	// arrange
	prefix, sibling := testPrefix(t), testPrefix(t)
	orphans := createOrphans(t, prefix, []int64{5 * mib}, []int64{5 * mib}, nil)
	survivor := createOrphans(t, sibling, []int64{5 * mib})
	if got := listUploads(t, prefix); !slices.Equal(got, orphans) {
		t.Fatalf("uploads under %s: %q, want %q", prefix, got, orphans)
	}
	ctx := context.Background()

	// act and assert: at the real time the uploads are young.
	young, err := janitor.New(env.S3(), janitor.Options{Bucket: env.Bucket, Prefixes: []string{prefix}, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if r := young.Sweep(ctx); r.Found != 0 || r.Aborted != 0 || r.Err != nil {
		t.Errorf("sweep of uploads younger than MaxAge: %+v, want nothing found", r)
	}

	// act and assert: two hours later they are orphans.
	r := newJanitor(t, prefix, false).Sweep(ctx)
	if r.Found != 3 || r.Aborted != 3 || r.Failed != 0 || r.OrphanBytes != 10*mib || r.Err != nil {
		t.Errorf("Sweep = %+v, want Found 3, Aborted 3, Failed 0, OrphanBytes %d, no error", r, 10*mib)
	}
	t.Logf("report: %+v", r)
	if got := listUploads(t, prefix); len(got) != 0 {
		t.Errorf("uploads left under %s: %q", prefix, got)
	}
	assertNothingLeft(t, prefix)
	if got := listUploads(t, sibling); !slices.Equal(got, survivor) {
		t.Errorf("uploads under the sibling prefix %s: %q, want %q untouched", sibling, got, survivor)
	}

	// act and assert: a second sweep, as another instance would make it,
	// finds nothing.
	if r := newJanitor(t, prefix, false).Sweep(ctx); r.Found != 0 || r.Err != nil {
		t.Errorf("second Sweep = %+v, want nothing found", r)
	}
	env.DeletePrefix(ctx, sibling)
	assertNothingLeft(t, sibling)
}

func TestJanitorDryRunAbortsNothing(t *testing.T) {
	// arrange
	prefix := testPrefix(t)
	orphans := createOrphans(t, prefix, []int64{5 * mib}, []int64{5 * mib}, nil)

	// act
	r := newJanitor(t, prefix, true).Sweep(context.Background())

	// assert
	if r.Found != 3 || r.Aborted != 0 || r.Failed != 0 || r.OrphanBytes != 10*mib || r.Err != nil {
		t.Errorf("dry-run Sweep = %+v, want Found 3, Aborted 0, Failed 0, OrphanBytes %d, no error", r, 10*mib)
	}
	if got := listUploads(t, prefix); !slices.Equal(got, orphans) {
		t.Errorf("uploads under %s after a dry run: %q, want all of %q", prefix, got, orphans)
	}
}

// racingClient is the S3 client of a janitor that another instance
// overtakes: before each ListParts, the upload is aborted by someone else.
type racingClient struct{ *s3.Client }

func (c racingClient) ListParts(ctx context.Context, in *s3.ListPartsInput, opts ...func(*s3.Options)) (*s3.ListPartsOutput, error) {
	if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: in.Bucket, Key: in.Key, UploadId: in.UploadId}); err != nil {
		return nil, err
	}
	return c.Client.ListParts(ctx, in, opts...)
}

func TestJanitorCountsUploadsAbortedByAnotherInstance(t *testing.T) {
	// arrange
	prefix := testPrefix(t)
	createOrphans(t, prefix, []int64{5 * mib}, nil)
	j, err := janitor.New(racingClient{env.S3()}, janitor.Options{
		Bucket: env.Bucket, Prefixes: []string{prefix}, MaxAge: time.Hour,
		Now: func() time.Time { return time.Now().Add(2 * time.Hour) },
	})
	if err != nil {
		t.Fatal(err)
	}

	// act
	r := j.Sweep(context.Background())

	// assert: S3's NoSuchUpload (from ListParts and Abort) means done.
	if r.Found != 2 || r.Aborted != 2 || r.Failed != 0 || r.OrphanBytes != 0 || r.Err != nil {
		t.Errorf("Sweep = %+v, want Found 2, Aborted 2, no error", r)
	}
	assertNothingLeft(t, prefix)
}
