package readiness

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

type fakeS3 struct {
	headErr, createErr error
	heads, creates     atomic.Int32
	open               atomic.Int32 // uploads created and not aborted
	lastKMSKey         atomic.Value
}

func (f *fakeS3) HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	f.heads.Add(1)
	return &s3.HeadBucketOutput{}, f.headErr
}

func (f *fakeS3) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	f.creates.Add(1)
	f.lastKMSKey.Store(aws.ToString(in.SSEKMSKeyId))
	if f.createErr != nil {
		return nil, f.createErr
	}
	f.open.Add(1)
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String("u")}, nil
}

func (f *fakeS3) AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	f.open.Add(-1)
	return &s3.AbortMultipartUploadOutput{}, nil
}

var kms = s3limits.Encryption{Mode: types.ServerSideEncryptionAwsKms, KMSKeyID: "alias/k"}

func TestReady(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection refused")
	tests := []struct {
		name        string
		s3          *fakeS3
		enc         s3limits.Encryption
		wantErr     string
		wantCreates int32
	}{
		{"ready with kms", &fakeS3{}, kms, "", 1},
		{"ready without kms", &fakeS3{}, s3limits.Encryption{Mode: types.ServerSideEncryptionAes256}, "", 0},
		{"s3 down", &fakeS3{headErr: boom}, kms, "s3: bucket b", 0},
		{"kms refused", &fakeS3{createErr: boom}, kms, "kms: creating an upload with key alias/k", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &Checker{S3: tt.s3, Bucket: "b", Key: "p/.ready", Encryption: tt.enc}
			err := c.Ready(t.Context())
			if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Ready = %v, want %q", err, tt.wantErr)
			}
			if got := tt.s3.creates.Load(); got != tt.wantCreates {
				t.Errorf("creates = %d, want %d", got, tt.wantCreates)
			}
			if tt.s3.open.Load() != 0 {
				t.Errorf("%d readiness uploads left open", tt.s3.open.Load())
			}
			if tt.wantCreates > 0 && tt.s3.lastKMSKey.Load() != "alias/k" {
				t.Errorf("upload created with key %v", tt.s3.lastKMSKey.Load())
			}
		})
	}
}

func TestReadyCaches(t *testing.T) {
	t.Parallel()
	f := &fakeS3{}
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	c := &Checker{S3: f, Bucket: "b", Key: "k", CacheFor: 5 * time.Second, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := c.Ready(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := f.heads.Load(); got != 1 {
		t.Fatalf("20 concurrent probes made %d checks, want 1", got)
	}
	// S3 goes down: the cached answer holds until it is CacheFor old.
	f.headErr = errors.New("down")
	advance(4 * time.Second)
	if err := c.Ready(t.Context()); err != nil {
		t.Fatalf("within CacheFor: %v", err)
	}
	advance(time.Second)
	if err := c.Ready(t.Context()); err == nil {
		t.Fatal("after CacheFor: ready while S3 is down")
	}
	if got := f.heads.Load(); got != 2 {
		t.Errorf("checks = %d, want 2", got)
	}
}

// slowS3 blocks HeadBucket until its context ends.
type slowS3 struct{ fakeS3 }

func (s *slowS3) HeadBucket(ctx context.Context, _ *s3.HeadBucketInput, _ ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestReadyTimeout(t *testing.T) {
	t.Parallel()
	c := &Checker{S3: &slowS3{}, Bucket: "b", Timeout: 50 * time.Millisecond}
	start := time.Now()
	err := c.Ready(t.Context())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ready = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Ready took %v", d)
	}
}
