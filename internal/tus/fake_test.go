package tus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

type fakeObject struct {
	data        []byte
	modified    time.Time
	meta        map[string]string
	contentType string
	sse         types.ServerSideEncryption
	tags        map[string]string
}

type fakeUpload struct {
	key       string
	initiated time.Time
	parts     map[int32][]byte
	obj       fakeObject
}

// fakeS3 is an in-memory S3 with the rules the handler depends on:
// If-None-Match on PutObject, parts of at least 5 MiB but the last.
type fakeS3 struct {
	mu      sync.Mutex
	now     func() time.Time
	objects map[string]fakeObject
	uploads map[string]*fakeUpload
	nextID  int
	calls   []string
	// beforePut, if set, runs before each PutObject (outside the lock).
	beforePut func(key string)
	// failCompletes is how many CompleteMultipartUpload calls fail next.
	failCompletes int
	// loseCompletes is how many CompleteMultipartUpload calls succeed
	// next but answer an error, as when the answer is lost.
	loseCompletes int
	// noPartCopy makes UploadPartCopy answer NotImplemented.
	noPartCopy bool
	// duplicateParts makes ListParts list every part twice, as SeaweedFS
	// lists a part uploaded twice.
	duplicateParts bool
	// dieAfterPart makes the next UploadPart succeed and every write after
	// it fail until dead is cleared, as when the instance dies right after
	// S3 stored a part.
	dieAfterPart, dead bool
}

// errDead is what a write gets while the fake plays a dead instance.
var errDead = errors.New("the instance died")

func newFakeS3(now func() time.Time) *fakeS3 {
	return &fakeS3{now: now, objects: map[string]fakeObject{}, uploads: map[string]*fakeUpload{}}
}

func (f *fakeS3) record(op string) { f.calls = append(f.calls, op) }

func read(r io.Reader) []byte {
	if r == nil {
		return nil
	}
	b, _ := io.ReadAll(r)
	return b
}

func (f *fakeS3) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("CreateMultipartUpload")
	f.nextID++
	id := fmt.Sprintf("upload-%d", f.nextID)
	f.uploads[id] = &fakeUpload{key: *in.Key, initiated: f.now(), parts: map[int32][]byte{},
		obj: fakeObject{meta: in.Metadata, contentType: aws.ToString(in.ContentType), sse: in.ServerSideEncryption}}
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String(id)}, nil
}

func (f *fakeS3) upload(id *string) (*fakeUpload, error) {
	u, ok := f.uploads[aws.ToString(id)]
	if !ok {
		return nil, &types.NoSuchUpload{}
	}
	return u, nil
}

func (f *fakeS3) UploadPart(_ context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	body := read(in.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("UploadPart")
	if f.dead {
		return nil, errDead
	}
	u, err := f.upload(in.UploadId)
	if err != nil {
		return nil, err
	}
	u.parts[*in.PartNumber] = body
	f.dead, f.dieAfterPart = f.dieAfterPart, false
	return &s3.UploadPartOutput{ETag: aws.String(fmt.Sprintf(`"%d-%d"`, *in.PartNumber, len(body)))}, nil
}

func (f *fakeS3) UploadPartCopy(_ context.Context, in *s3.UploadPartCopyInput, _ ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("UploadPartCopy")
	if f.noPartCopy {
		return nil, &smithy.GenericAPIError{Code: "NotImplemented"}
	}
	u, err := f.upload(in.UploadId)
	if err != nil {
		return nil, err
	}
	src, err := url.PathUnescape(strings.TrimPrefix(aws.ToString(in.CopySource), aws.ToString(in.Bucket)+"/"))
	if err != nil {
		return nil, err
	}
	o, ok := f.objects[src]
	if !ok {
		return nil, &types.NoSuchKey{}
	}
	u.parts[*in.PartNumber] = slices.Clone(o.data)
	return &s3.UploadPartCopyOutput{CopyPartResult: &types.CopyPartResult{ETag: aws.String(fmt.Sprintf(`"%d-%d"`, *in.PartNumber, len(o.data)))}}, nil
}

func (f *fakeS3) ListParts(_ context.Context, in *s3.ListPartsInput, _ ...func(*s3.Options)) (*s3.ListPartsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("ListParts")
	u, err := f.upload(in.UploadId)
	if err != nil {
		return nil, err
	}
	out := &s3.ListPartsOutput{IsTruncated: aws.Bool(false)}
	nums := make([]int32, 0, len(u.parts))
	for n := range u.parts {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	for _, n := range nums {
		p := types.Part{PartNumber: aws.Int32(n), Size: aws.Int64(int64(len(u.parts[n]))),
			ETag: aws.String(fmt.Sprintf(`"%d-%d"`, n, len(u.parts[n]))), LastModified: aws.Time(f.now())}
		if f.duplicateParts {
			out.Parts = append(out.Parts, p)
		}
		out.Parts = append(out.Parts, p)
	}
	return out, nil
}

func (f *fakeS3) CompleteMultipartUpload(_ context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("CompleteMultipartUpload")
	if f.failCompletes > 0 {
		f.failCompletes--
		return nil, &smithy.GenericAPIError{Code: "InternalError"}
	}
	u, err := f.upload(in.UploadId)
	if err != nil {
		return nil, err
	}
	var data []byte
	for i, p := range in.MultipartUpload.Parts {
		b, ok := u.parts[*p.PartNumber]
		if !ok || int(*p.PartNumber) != i+1 {
			return nil, &smithy.GenericAPIError{Code: "InvalidPart"}
		}
		if i < len(in.MultipartUpload.Parts)-1 && int64(len(b)) < s3limits.MinPartSize {
			return nil, &smithy.GenericAPIError{Code: "EntityTooSmall"}
		}
		data = append(data, b...)
	}
	obj := u.obj
	obj.data, obj.modified = data, f.now()
	f.objects[u.key] = obj
	delete(f.uploads, *in.UploadId)
	if f.loseCompletes > 0 {
		f.loseCompletes--
		return nil, &smithy.GenericAPIError{Code: "InternalError"}
	}
	return &s3.CompleteMultipartUploadOutput{}, nil
}

func (f *fakeS3) AbortMultipartUpload(_ context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("AbortMultipartUpload")
	if _, err := f.upload(in.UploadId); err != nil {
		return nil, err
	}
	delete(f.uploads, *in.UploadId)
	return &s3.AbortMultipartUploadOutput{}, nil
}

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if f.beforePut != nil {
		f.beforePut(*in.Key)
	}
	body := read(in.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("PutObject")
	if f.dead {
		return nil, errDead
	}
	if aws.ToString(in.IfNoneMatch) == "*" {
		if _, ok := f.objects[*in.Key]; ok {
			return nil, &smithy.GenericAPIError{Code: "PreconditionFailed"}
		}
	}
	o := fakeObject{data: body, modified: f.now(), meta: in.Metadata, contentType: aws.ToString(in.ContentType), sse: in.ServerSideEncryption}
	if in.Tagging != nil {
		q, _ := url.ParseQuery(*in.Tagging)
		o.tags = map[string]string{}
		for k := range q {
			o.tags[k] = q.Get(k)
		}
	}
	f.objects[*in.Key] = o
	return &s3.PutObjectOutput{}, nil
}

func (f *fakeS3) PutObjectTagging(_ context.Context, in *s3.PutObjectTaggingInput, _ ...func(*s3.Options)) (*s3.PutObjectTaggingOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("PutObjectTagging")
	o, ok := f.objects[*in.Key]
	if !ok {
		return nil, &types.NoSuchKey{}
	}
	o.tags = map[string]string{}
	for _, t := range in.Tagging.TagSet {
		o.tags[*t.Key] = *t.Value
	}
	f.objects[*in.Key] = o
	return &s3.PutObjectTaggingOutput{}, nil
}

func (f *fakeS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("GetObject")
	o, ok := f.objects[*in.Key]
	if !ok {
		return nil, &types.NoSuchKey{}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(o.data)), ContentLength: aws.Int64(int64(len(o.data)))}, nil
}

func (f *fakeS3) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("HeadObject")
	o, ok := f.objects[*in.Key]
	if !ok {
		return nil, &types.NotFound{}
	}
	return &s3.HeadObjectOutput{ContentLength: aws.Int64(int64(len(o.data)))}, nil
}

func (f *fakeS3) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("DeleteObject")
	if f.dead {
		return nil, errDead
	}
	delete(f.objects, *in.Key)
	return &s3.DeleteObjectOutput{}, nil
}

func (f *fakeS3) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("ListObjectsV2")
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	for _, k := range f.keys(aws.ToString(in.Prefix)) {
		out.Contents = append(out.Contents, types.Object{Key: aws.String(k), LastModified: aws.Time(f.objects[k].modified), Size: aws.Int64(int64(len(f.objects[k].data)))})
	}
	return out, nil
}

func (f *fakeS3) ListMultipartUploads(_ context.Context, in *s3.ListMultipartUploadsInput, _ ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("ListMultipartUploads")
	out := &s3.ListMultipartUploadsOutput{IsTruncated: aws.Bool(false)}
	for id, u := range f.uploads {
		if strings.HasPrefix(u.key, aws.ToString(in.Prefix)) {
			out.Uploads = append(out.Uploads, types.MultipartUpload{Key: aws.String(u.key), UploadId: aws.String(id), Initiated: aws.Time(u.initiated)})
		}
	}
	return out, nil
}

// keys lists the object keys under prefix, sorted; f.mu must be held.
func (f *fakeS3) keys(prefix string) []string {
	var keys []string
	for k := range f.objects {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func (f *fakeS3) object(key string) (fakeObject, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.objects[key]
	return o, ok
}

func (f *fakeS3) objectKeys(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keys(prefix)
}

func (f *fakeS3) openUploads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.uploads)
}

var _ API = (*fakeS3)(nil)
