package s3stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
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

// fakeS3 is an in-memory API that records calls and can be told to fail.
type fakeS3 struct {
	mu          sync.Mutex
	calls       []string
	objects     map[string][]byte
	meta        map[string]map[string]string
	uploads     map[string]map[int32][]byte
	puts        []*s3.PutObjectInput
	creates     []*s3.CreateMultipartUploadInput
	inflight    atomic.Int32
	maxInflight atomic.Int32

	created       int  // multipart uploads created so far (upload ids)
	putLost       bool // PutObject stores the object, then its answer is lost
	foreignWrite  bool // what PutObject stores carries another write's id
	completeLost  bool // CompleteMultipartUpload completes, then its answer is lost
	uploadMeta    map[string]map[string]string
	failPart      int32 // UploadPart of this part number fails
	abortFailures int   // how many aborts fail before one succeeds
	partDelay     time.Duration
	// storedChecksum, when set, is the full-object checksum
	// CompleteMultipartUpload reports, whatever was sent.
	storedChecksum string
	tagging        string // of the last PutObjectTagging, URL-encoded
}

func newFake() *fakeS3 {
	return &fakeS3{objects: map[string][]byte{}, meta: map[string]map[string]string{}, uploads: map[string]map[int32][]byte{}}
}

func (f *fakeS3) record(c string) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
}

func (f *fakeS3) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func (f *fakeS3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f.record("PutObject")
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if got, want := aws.ToString(in.ChecksumCRC32C), crc32c(b); in.ChecksumAlgorithm == types.ChecksumAlgorithmCrc32c && got != want {
		return nil, fmt.Errorf("BadDigest: checksum %q, body has %q", got, want)
	}
	f.puts = append(f.puts, in)
	f.objects[*in.Key] = b
	f.meta[*in.Key] = in.Metadata
	if f.foreignWrite {
		f.meta[*in.Key] = map[string]string{s3limits.MetaWriteID: "someone-else"}
	}
	if f.putLost {
		return nil, &net.OpError{Op: "read", Err: errors.New("i/o timeout")}
	}
	return &s3.PutObjectOutput{ETag: aws.String(`"etag-single"`)}, nil
}

func (f *fakeS3) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	f.record("CreateMultipartUpload")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates = append(f.creates, in)
	f.created++
	id := fmt.Sprintf("upload-%d", f.created)
	f.uploads[id] = map[int32][]byte{}
	if f.uploadMeta == nil {
		f.uploadMeta = map[string]map[string]string{}
	}
	f.uploadMeta[id] = in.Metadata
	return &s3.CreateMultipartUploadOutput{UploadId: &id}, nil
}

func (f *fakeS3) UploadPart(ctx context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	f.record("UploadPart")
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.maxInflight.Load()
		if n <= m || f.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	if f.partDelay > 0 {
		select {
		case <-time.After(f.partDelay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if *in.PartNumber == f.failPart {
		return nil, errors.New("injected part failure")
	}
	if in.ChecksumAlgorithm == "" {
		return nil, errors.New("part without checksum algorithm")
	}
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	up, ok := f.uploads[*in.UploadId]
	if !ok {
		return nil, errors.New("NoSuchUpload")
	}
	if got, want := aws.ToString(in.ChecksumCRC32C), crc32c(b); in.ChecksumAlgorithm == types.ChecksumAlgorithmCrc32c && got != want {
		return nil, fmt.Errorf("BadDigest: part checksum %q, part has %q", got, want)
	}
	up[*in.PartNumber] = b
	return &s3.UploadPartOutput{ETag: aws.String(fmt.Sprintf(`"etag-%d"`, *in.PartNumber)), ChecksumCRC32C: in.ChecksumCRC32C}, nil
}

func (f *fakeS3) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	f.record("CompleteMultipartUpload")
	f.mu.Lock()
	defer f.mu.Unlock()
	up, ok := f.uploads[*in.UploadId]
	if !ok {
		return nil, errors.New("NoSuchUpload")
	}
	var buf bytes.Buffer
	for i, p := range in.MultipartUpload.Parts {
		if int(*p.PartNumber) != i+1 {
			return nil, fmt.Errorf("parts out of order: %d at %d", *p.PartNumber, i)
		}
		if aws.ToString(p.ChecksumCRC32C) != crc32c(up[*p.PartNumber]) {
			return nil, errors.New("part checksum missing")
		}
		buf.Write(up[*p.PartNumber])
	}
	out := &s3.CompleteMultipartUploadOutput{ETag: aws.String(`"etag-multi"`)}
	if in.ChecksumType == types.ChecksumTypeFullObject {
		// S3 checks the whole object's CRC against the one sent.
		if got, want := aws.ToString(in.ChecksumCRC32C), crc32c(buf.Bytes()); got != want {
			return nil, fmt.Errorf("BadDigest: full-object checksum %q, object has %q", got, want)
		}
		out.ChecksumCRC32C, out.ChecksumType = in.ChecksumCRC32C, types.ChecksumTypeFullObject
		if f.storedChecksum != "" {
			out.ChecksumCRC32C = &f.storedChecksum
		}
	}
	f.objects[*in.Key] = buf.Bytes()
	f.meta[*in.Key] = f.uploadMeta[*in.UploadId]
	delete(f.uploads, *in.UploadId)
	if f.completeLost {
		return nil, &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}
	}
	return out, nil
}

func (f *fakeS3) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	f.record("AbortMultipartUpload")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.abortFailures > 0 {
		f.abortFailures--
		return nil, errors.New("injected abort failure")
	}
	if _, ok := f.uploads[*in.UploadId]; !ok {
		return nil, &types.NoSuchUpload{}
	}
	delete(f.uploads, *in.UploadId)
	return &s3.AbortMultipartUploadOutput{}, nil
}

func (f *fakeS3) PutObjectTagging(ctx context.Context, in *s3.PutObjectTaggingInput, _ ...func(*s3.Options)) (*s3.PutObjectTaggingOutput, error) {
	f.record("PutObjectTagging")
	v := url.Values{}
	for _, t := range in.Tagging.TagSet {
		v.Set(aws.ToString(t.Key), aws.ToString(t.Value))
	}
	f.mu.Lock()
	f.tagging = v.Encode()
	f.mu.Unlock()
	return &s3.PutObjectTaggingOutput{}, nil
}

func (f *fakeS3) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	f.record("DeleteObject")
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.objects, *in.Key)
	return &s3.DeleteObjectOutput{}, nil
}

func (f *fakeS3) HeadObject(ctx context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	f.record("HeadObject")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.objects[*in.Key]; !ok {
		return nil, &types.NotFound{}
	}
	return &s3.HeadObjectOutput{Metadata: f.meta[*in.Key]}, nil
}

func (f *fakeS3) openUploads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.uploads)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// crc32c is the base64 CRC32C of b, as S3 shows it.
func crc32c(b []byte) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))))
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

const mib = 1 << 20

func TestUploadStoresBodies(t *testing.T) {
	tests := []struct {
		name      string
		size      int
		declared  int64
		wantParts int
	}{
		{"empty", 0, -1, 0},
		{"small", 1000, -1, 0},
		{"exactly one part", 5 * mib, -1, 0},
		{"one byte over a part", 5*mib + 1, -1, 2},
		{"several parts", 12*mib + 17, -1, 3},
		{"declared size", 11 * mib, 11 * mib, 3},
	}
	for _, withSHA := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/sha256=%v", tt.name, withSHA), func(t *testing.T) {
				fake := newFake()
				u := New(fake, Options{PartSize: s3limits.MinPartSize, Concurrency: 2, Tags: true, SHA256: withSHA,
					Encryption: Encryption{Mode: types.ServerSideEncryptionAwsKms, KMSKeyID: "alias/k", BucketKey: true}})
				body := randomBytes(tt.size)
				res, err := u.Upload(context.Background(), Object{
					Bucket: "b", Key: "k", Size: tt.declared, ContentType: "application/x-test",
					Metadata: map[string]string{"original-name": "a.bin"},
				}, bytes.NewReader(body))
				if err != nil {
					t.Fatalf("Upload: %v", err)
				}
				if got := fake.objects["k"]; !bytes.Equal(got, body) {
					t.Fatalf("stored %d bytes, want %d identical bytes", len(got), len(body))
				}
				if res.Parts != tt.wantParts {
					t.Errorf("parts = %d, want %d", res.Parts, tt.wantParts)
				}
				wantSHA := ""
				if withSHA {
					wantSHA = hexSum(body)
				}
				if res.Size != int64(tt.size) || res.SHA256 != wantSHA {
					t.Errorf("result size %d sha %q, want %d %q", res.Size, res.SHA256, tt.size, wantSHA)
				}
				wantSum := Checksum{Algorithm: "CRC32C", Type: "FULL_OBJECT", Value: crc32c(body)}
				if res.Checksum != wantSum {
					t.Errorf("result checksum %+v, want %+v", res.Checksum, wantSum)
				}
				var tagging string
				if tt.wantParts == 0 {
					in := fake.puts[0]
					if in.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToString(in.SSEKMSKeyId) != "alias/k" || !aws.ToBool(in.BucketKeyEnabled) {
						t.Errorf("PutObject encryption = %q %q", in.ServerSideEncryption, aws.ToString(in.SSEKMSKeyId))
					}
					if sum, ok := in.Metadata["sha256"]; sum != wantSHA || ok != withSHA || in.Metadata["original-name"] != "a.bin" {
						t.Errorf("PutObject metadata = %v", in.Metadata)
					}
					if in.ChecksumAlgorithm != types.ChecksumAlgorithmCrc32c || aws.ToString(in.ChecksumCRC32C) != crc32c(body) {
						t.Errorf("checksum %q %q, want CRC32C %q", in.ChecksumAlgorithm, aws.ToString(in.ChecksumCRC32C), crc32c(body))
					}
					tagging = aws.ToString(in.Tagging)
				} else {
					in := fake.creates[0]
					if in.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToString(in.SSEKMSKeyId) != "alias/k" {
						t.Errorf("CreateMultipartUpload encryption = %q %q", in.ServerSideEncryption, aws.ToString(in.SSEKMSKeyId))
					}
					if in.ChecksumType != types.ChecksumTypeFullObject || in.ChecksumAlgorithm != types.ChecksumAlgorithmCrc32c {
						t.Errorf("CreateMultipartUpload checksum %q %q, want CRC32C FULL_OBJECT", in.ChecksumAlgorithm, in.ChecksumType)
					}
					if fake.count("PutObjectTagging") != 1 {
						t.Errorf("multipart object was not tagged: %v", fake.calls)
					}
					tagging = fake.tagging
				}
				tags, _ := url.ParseQuery(tagging)
				if tags.Get("crc32c") != crc32c(body) || tags.Get("size") != fmt.Sprint(tt.size) || tags.Get("sha256") != wantSHA {
					t.Errorf("tags = %q", tagging)
				}
			})
		}
	}
}

// A server that reports a different full-object checksum than the one it
// was sent (it should have refused it) fails the upload, and the object is
// removed.
func TestStoredChecksumMismatchFails(t *testing.T) {
	fake := newFake()
	fake.storedChecksum = "AAAAAA=="
	u := New(fake, Options{PartSize: s3limits.MinPartSize, Concurrency: 2})
	_, err := u.Upload(context.Background(), Object{Bucket: "b", Key: "k", Size: -1}, bytes.NewReader(randomBytes(11*mib)))
	if !errors.Is(err, ErrStorage) {
		t.Fatalf("Upload error = %v, want ErrStorage", err)
	}
	if _, ok := fake.objects["k"]; ok {
		t.Errorf("the object was left behind")
	}
}

func TestUploadFailuresLeaveNothing(t *testing.T) {
	readErr := errors.New("connection reset by client")
	tests := []struct {
		name       string
		size       int
		maxSize    int64
		declared   int64
		failPart   int32
		readFailAt int
		inspect    func([]byte) (string, error)
		wantErr    error
		wantCalls  bool // whether S3 was called at all
	}{
		{name: "declared too large", size: 10, declared: 100, maxSize: 50, wantErr: ErrTooLarge},
		{name: "too large in first part", size: 1000, maxSize: 999, wantErr: ErrTooLarge},
		{name: "exactly at the limit is fine", size: 1000, maxSize: 1000},
		{name: "too large after several parts", size: 16 * mib, maxSize: 12 * mib, wantErr: ErrTooLarge, wantCalls: true},
		{name: "part upload fails", size: 16 * mib, failPart: 2, wantErr: ErrStorage, wantCalls: true},
		{name: "body read fails mid-stream", size: 16 * mib, readFailAt: 11 * mib, wantErr: readErr, wantCalls: true},
		{name: "body read fails in first part", size: 16 * mib, readFailAt: 100, wantErr: ErrRead},
		{name: "inspect rejects", size: 16 * mib, inspect: func([]byte) (string, error) { return "", errors.New("nope") }, wantErr: errors.New("")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake()
			fake.failPart = tt.failPart
			u := New(fake, Options{PartSize: s3limits.MinPartSize, Concurrency: 3})
			var body io.Reader = bytes.NewReader(randomBytes(tt.size))
			if tt.readFailAt > 0 {
				body = io.MultiReader(io.LimitReader(body, int64(tt.readFailAt)), &errReader{readErr})
			}
			declared := tt.declared
			if declared == 0 {
				declared = -1
			}
			_, err := u.Upload(context.Background(), Object{Bucket: "b", Key: "k", Size: declared, MaxSize: tt.maxSize, Inspect: tt.inspect}, body)
			u.Wait(time.Minute)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Upload: %v", err)
			case tt.wantErr == nil:
				return
			case err == nil:
				t.Fatalf("Upload succeeded, want %v", tt.wantErr)
			case tt.wantErr.Error() != "" && !errors.Is(err, tt.wantErr):
				t.Fatalf("Upload error = %v, want errors.Is %v", err, tt.wantErr)
			}
			if len(fake.objects) != 0 || fake.openUploads() != 0 {
				t.Errorf("left behind: %d objects, %d multipart uploads (calls %v)", len(fake.objects), fake.openUploads(), fake.calls)
			}
			if called := len(fake.calls) > 0; called != tt.wantCalls {
				t.Errorf("S3 called = %v, want %v: %v", called, tt.wantCalls, fake.calls)
			}
			if tt.wantCalls {
				var mf MultipartFailure
				if !errors.As(err, &mf) || mf.UploadID() == "" {
					t.Errorf("error %v does not expose the upload id", err)
				}
			}
		})
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

func TestAbortIsRetriedInBackground(t *testing.T) {
	fake := newFake()
	fake.failPart = 3
	fake.abortFailures = 2
	u := New(fake, Options{PartSize: s3limits.MinPartSize, Concurrency: 1, AbortTimeout: 10 * time.Second})
	_, err := u.Upload(context.Background(), Object{Bucket: "b", Key: "k", Size: -1}, bytes.NewReader(randomBytes(16*mib)))
	if !errors.Is(err, ErrStorage) {
		t.Fatalf("err = %v, want ErrStorage", err)
	}
	u.Wait(time.Minute)
	if n := fake.count("AbortMultipartUpload"); n != 3 {
		t.Errorf("abort attempts = %d, want 3", n)
	}
	if fake.openUploads() != 0 {
		t.Errorf("multipart upload left open")
	}
}

func TestCancelledContext(t *testing.T) {
	fake := newFake()
	fake.partDelay = time.Second
	u := New(fake, Options{PartSize: s3limits.MinPartSize, Concurrency: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := u.Upload(ctx, Object{Bucket: "b", Key: "k", Size: -1}, bytes.NewReader(randomBytes(30*mib)))
	u.Wait(time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if fake.openUploads() != 0 {
		t.Errorf("multipart upload left open: %v", fake.calls)
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	fake := newFake()
	fake.partDelay = 20 * time.Millisecond
	budget := NewBufferBudget(3*s3limits.MinPartSize, 0)
	u := New(fake, Options{PartSize: s3limits.MinPartSize, Concurrency: 2, Budget: budget})
	body := randomBytes(40 * mib)
	if _, err := u.Upload(context.Background(), Object{Bucket: "b", Key: "k", Size: -1}, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if m := fake.maxInflight.Load(); m > 2 {
		t.Errorf("max parts in flight = %d, want <= 2", m)
	}
	if !bytes.Equal(fake.objects["k"], body) {
		t.Errorf("stored bytes differ")
	}
	// The whole budget is free again.
	if used := budget.Used(); used != 0 {
		t.Errorf("%d bytes were not returned to the budget", used)
	}
}

func TestPartSize(t *testing.T) {
	u := New(newFake(), Options{PartSize: 16 * mib})
	capped := New(newFake(), Options{PartSize: 16 * mib, Concurrency: 4, Budget: NewBufferBudget(1<<30, 0)})
	tests := []struct {
		name    string
		u       *Uploader
		maxSize int64
		part    int
		want    int64
	}{
		{"no limit starts at part_size", u, 0, 1, 16 * mib},
		{"100 GiB limit fits default", u, 100 << 30, 1, 16 * mib},
		{"1 TiB limit grows", u, 1 << 40, 1, 105 * mib},
		{"5 TiB limit", u, s3limits.MaxObjectSize - 1, 1, 525 * mib},
		{"unknown: first tier", u, 0, 1000, 16 * mib},
		{"unknown: second tier", u, 0, 1001, 32 * mib},
		{"unknown: last tier", u, 0, 10000, 8192 * mib},
		{"budget caps a 5 TiB limit", capped, s3limits.MaxObjectSize - 1, 1, 204 * mib},
		{"budget caps growing parts", capped, 0, 10000, 204 * mib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.u.partSize(tt.maxSize, tt.part)
			want := min(tt.want, s3limits.MaxPartSize)
			if got != want {
				t.Errorf("partSize(%d, %d) = %d MiB, want %d MiB", tt.maxSize, tt.part, got/mib, want/mib)
			}
		})
	}
	// Growing parts for an unknown size must reach the S3 object limit.
	if got := u.MaxObjectSize(0); got != s3limits.MaxObjectSize {
		t.Errorf("10,000 growing parts hold %d bytes, less than %d", got, s3limits.MaxObjectSize)
	}
	// With a budget, the largest object is what 10,000 capped parts hold.
	if got, want := capped.MaxObjectSize(0), int64(1000*(16+32+64+128)+6000*204)*mib; got != want {
		t.Errorf("capped MaxObjectSize = %d, want %d", got, want)
	}
}

// Uploads sharing a small memory budget must all finish: none may wait for
// memory while holding a buffer that is not on its way to S3.
func TestSharedBudgetNeverDeadlocks(t *testing.T) {
	fake := newFake()
	fake.partDelay = 5 * time.Millisecond
	budget := NewBufferBudget(s3limits.MinPartSize, 0) // room for a single part at a time
	u := New(fake, Options{PartSize: s3limits.MinPartSize, Concurrency: 2, Budget: budget})
	done := make(chan error, 4)
	for i := range 4 {
		go func() {
			key := fmt.Sprintf("k%d", i)
			_, err := u.Upload(context.Background(), Object{Bucket: "b", Key: key, Size: -1}, bytes.NewReader(randomBytes(12*mib+i)))
			done <- err
		}()
	}
	timeout := time.After(60 * time.Second)
	for range 4 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("upload: %v", err)
			}
		case <-timeout:
			t.Fatal("uploads sharing a one-part budget deadlocked")
		}
	}
	if len(fake.objects) != 4 {
		t.Errorf("stored %d objects, want 4", len(fake.objects))
	}
}

// Writes whose answer was lost may have been stored after all: the
// uploader removes them once they appear, but only its own.
func TestLostAnswersLeaveNothing(t *testing.T) {
	tests := []struct {
		name  string
		size  int
		setup func(*fakeS3)
	}{
		{"PutObject timed out but stored", 1000, func(f *fakeS3) { f.putLost = true }},
		{"CompleteMultipartUpload answer lost", 12 * mib, func(f *fakeS3) { f.completeLost = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake()
			tt.setup(fake)
			u := New(fake, Options{PartSize: s3limits.MinPartSize, AbortTimeout: 5 * time.Second})
			_, err := u.Upload(context.Background(), Object{Bucket: "b", Key: "k", Size: -1}, bytes.NewReader(randomBytes(tt.size)))
			if err == nil {
				t.Fatal("Upload succeeded, want an error")
			}
			u.Wait(time.Minute)
			if len(fake.objects) != 0 || fake.openUploads() != 0 {
				t.Errorf("left behind: %d objects, %d uploads (calls %v)", len(fake.objects), fake.openUploads(), fake.calls)
			}
		})
	}
	t.Run("another write's object is left alone", func(t *testing.T) {
		fake := newFake()
		fake.putLost = true
		fake.foreignWrite = true // a newer write replaced ours before we looked
		u := New(fake, Options{AbortTimeout: 3 * time.Second})
		_, _ = u.Upload(context.Background(), Object{Bucket: "b", Key: "k", Size: -1}, bytes.NewReader([]byte("mine")))
		u.Wait(time.Minute)
		if _, ok := fake.objects["k"]; !ok {
			t.Errorf("deleted an object written by someone else")
		}
	})
}
