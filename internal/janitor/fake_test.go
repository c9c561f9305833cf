package janitor_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// upload is one multipart upload held by fakeS3.
type upload struct {
	key, id   string
	initiated time.Time // zero: S3 does not report it
	parts     []int64   // sizes of parts 1, 2, ...
}

// fakeS3 is an in-memory API that records its calls. Uploads are listed in
// (key, upload id) order like S3 does; aborted ones disappear.
type fakeS3 struct {
	mu      sync.Mutex
	calls   []string
	uploads []upload
	aborted []string // upload ids, in order

	pageSize      int              // uploads per ListMultipartUploads page; default 1000
	partsPageSize int              // parts per ListParts page; default 1000
	ignorePrefix  bool             // list every upload, whatever the Prefix parameter
	listErr       map[string]error // ListMultipartUploads of this prefix fails
	partsErr      map[string]error // ListParts of this upload id fails
	abortErr      map[string]error // AbortMultipartUpload of this upload id fails
	// hook, when set, runs at the start of every call, outside the lock;
	// its error, if any, is returned.
	hook func(ctx context.Context, op string) error
}

func (f *fakeS3) record(ctx context.Context, call string) error {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	hook := f.hook
	f.mu.Unlock()
	if hook != nil {
		op, _, _ := strings.Cut(call, " ")
		return hook(ctx, op)
	}
	return nil
}

func (f *fakeS3) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeS3) abortedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.aborted)
}

func (f *fakeS3) find(id string) (int, bool) {
	i := slices.IndexFunc(f.uploads, func(u upload) bool { return u.id == id })
	return i, i >= 0
}

func (f *fakeS3) ListMultipartUploads(ctx context.Context, in *s3.ListMultipartUploadsInput, _ ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error) {
	prefix, km, im := aws.ToString(in.Prefix), aws.ToString(in.KeyMarker), aws.ToString(in.UploadIdMarker)
	if err := f.record(ctx, fmt.Sprintf("List %s after=%s/%s", prefix, km, im)); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.listErr[prefix]; err != nil {
		return nil, err
	}
	all := slices.Clone(f.uploads)
	slices.SortFunc(all, func(a, b upload) int { return cmp.Or(strings.Compare(a.key, b.key), strings.Compare(a.id, b.id)) })
	var page []types.MultipartUpload
	size := cmp.Or(f.pageSize, 1000)
	out := &s3.ListMultipartUploadsOutput{}
	for _, u := range all {
		if !f.ignorePrefix && !strings.HasPrefix(u.key, prefix) {
			continue
		}
		if km != "" && (u.key < km || u.key == km && (im == "" || u.id <= im)) {
			continue
		}
		if len(page) == size {
			last := page[len(page)-1]
			out.IsTruncated, out.NextKeyMarker, out.NextUploadIdMarker = aws.Bool(true), last.Key, last.UploadId
			break
		}
		mu := types.MultipartUpload{Key: aws.String(u.key), UploadId: aws.String(u.id)}
		if !u.initiated.IsZero() {
			mu.Initiated = aws.Time(u.initiated)
		}
		page = append(page, mu)
	}
	out.Uploads = page
	return out, nil
}

func (f *fakeS3) ListParts(ctx context.Context, in *s3.ListPartsInput, _ ...func(*s3.Options)) (*s3.ListPartsOutput, error) {
	id, marker := aws.ToString(in.UploadId), aws.ToString(in.PartNumberMarker)
	if err := f.record(ctx, fmt.Sprintf("ListParts %s after=%s", id, marker)); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.partsErr[id]; err != nil {
		return nil, err
	}
	i, ok := f.find(id)
	if !ok {
		return nil, &types.NoSuchUpload{}
	}
	from := 0
	if marker != "" {
		from, _ = strconv.Atoi(marker)
	}
	out := &s3.ListPartsOutput{}
	for n, size := range f.uploads[i].parts[from:] {
		num := int32(from + n + 1)
		if len(out.Parts) == cmp.Or(f.partsPageSize, 1000) {
			out.IsTruncated, out.NextPartNumberMarker = aws.Bool(true), aws.String(strconv.Itoa(int(num-1)))
			break
		}
		out.Parts = append(out.Parts, types.Part{PartNumber: aws.Int32(num), Size: aws.Int64(size)})
	}
	return out, nil
}

func (f *fakeS3) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	id := aws.ToString(in.UploadId)
	if err := f.record(ctx, "Abort "+aws.ToString(in.Key)+" "+id); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.abortErr[id]; err != nil {
		return nil, err
	}
	i, ok := f.find(id)
	if !ok || f.uploads[i].key != aws.ToString(in.Key) {
		return nil, &types.NoSuchUpload{Message: aws.String("The specified upload does not exist.")}
	}
	f.uploads = slices.Delete(f.uploads, i, i+1)
	f.aborted = append(f.aborted, id)
	return &s3.AbortMultipartUploadOutput{}, nil
}
