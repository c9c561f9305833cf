package fileapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/presign"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// Users of the tests.
var (
	alice  = policy.Subject{ID: "alice", Role: roles.Uploader}
	bob    = policy.Subject{ID: "bob", Role: roles.Uploader}
	vic    = policy.Subject{ID: "vic", Role: roles.Viewer}
	ada    = policy.Subject{ID: "ada", Role: roles.Admin}
	nobody = policy.Subject{ID: "nobody", Role: roles.None}
)

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

var errFakeDenied = errors.New("denied by fake policy")

// fakeAuth implements the policy the gateway ships: every user owns
// users/<id>/; viewers may read and list their own files, uploaders may also
// upload and delete them, admins may do anything under users/ and list all.
type fakeAuth struct {
	mu    sync.Mutex
	calls []string // "<user> <action> <key>"
	// noDelete takes delete away from uploaders (policy uploader delete none).
	noDelete bool
}

func (a *fakeAuth) record(s string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, s)
}

func (a *fakeAuth) OwnerPrefix(userID string) string { return "users/" + userID + "/" }

func (a *fakeAuth) Authorize(u policy.Subject, action policy.Action, key string) error {
	a.record(u.ID + " " + string(action) + " " + key)
	own := strings.HasPrefix(key, a.OwnerPrefix(u.ID))
	switch u.Role {
	case roles.Admin:
		if strings.HasPrefix(key, "users/") {
			return nil
		}
	case roles.Uploader:
		if own && slices.Contains([]policy.Action{policy.Upload, policy.Download, policy.Delete}, action) && !(a.noDelete && action == policy.Delete) {
			return nil
		}
	case roles.Viewer:
		if own && action == policy.Download {
			return nil
		}
	}
	return fmt.Errorf("%w: %s may not %s %s", errFakeDenied, u.ID, action, key)
}

func (a *fakeAuth) ListPrefix(u policy.Subject, all bool) (string, error) {
	a.record(fmt.Sprintf("%s list all=%v", u.ID, all))
	switch {
	case u.Role == roles.None:
		return "", errFakeDenied
	case all && u.Role != roles.Admin:
		return "", errFakeDenied
	case all:
		return "users/", nil
	}
	return a.OwnerPrefix(u.ID), nil
}

type fakeObject struct {
	size     int64
	ct       string
	etag     string
	meta     map[string]string
	modified time.Time
	body     []byte // the first bytes, for GetObject
	tags     []types.Tag
	sha256   string // base64 ChecksumSHA256, for HeadObject
}

type fakeUpload struct {
	key         string
	parts       []types.Part
	contentType string
}

// fakeContent is the first bytes of a completed upload of each type, so
// that the completed object sniffs as what it was declared.
var fakeContent = map[string][]byte{
	"application/pdf": []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"),
	"image/png":       pngBytes,
	"text/plain":      []byte("hello, plain text\n"),
}

// fakeStore is an in-memory S3 that records every call. errs makes an
// operation fail.
type fakeStore struct {
	mu        sync.Mutex
	calls     []string // "<Operation> <key or prefix>"
	objects   map[string]fakeObject
	uploads   map[string]*fakeUpload
	errs      map[string]error
	pageSize  int // ListParts page size; default 1000
	created   []*s3.CreateMultipartUploadInput
	completed []*s3.CompleteMultipartUploadInput
	aborted   []string // upload ids
	listed    []*s3.ListObjectsV2Input
	listParts int // ListParts calls

	beforeCreate func() // when set, CreateMultipartUpload calls it first
	// completedBody, when set, is every completed upload's content instead
	// of fakeContent's for its type.
	completedBody []byte
}

func newFakeStore() *fakeStore {
	return &fakeStore{objects: map[string]fakeObject{}, uploads: map[string]*fakeUpload{}, errs: map[string]error{}}
}

func (f *fakeStore) call(op, key string) error {
	f.calls = append(f.calls, op+" "+key)
	return f.errs[op]
}

func (f *fakeStore) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	if f.beforeCreate != nil {
		f.beforeCreate()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CreateMultipartUpload", *in.Key); err != nil {
		return nil, err
	}
	f.created = append(f.created, in)
	id := "upload-" + strconv.Itoa(len(f.created))
	f.uploads[id] = &fakeUpload{key: *in.Key, contentType: aws.ToString(in.ContentType)}
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String(id), Key: in.Key, Bucket: in.Bucket}, nil
}

// addParts records uploaded parts of the given sizes, numbered from 1.
func (f *fakeStore) addParts(uploadID string, sizes ...int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.uploads[uploadID]
	for _, size := range sizes {
		n := int32(len(u.parts) + 1)
		u.parts = append(u.parts, types.Part{PartNumber: aws.Int32(n), Size: aws.Int64(size), ETag: aws.String(fmt.Sprintf(`"etag-%d"`, n))})
	}
}

func (f *fakeStore) ListParts(_ context.Context, in *s3.ListPartsInput, _ ...func(*s3.Options)) (*s3.ListPartsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listParts++
	if err := f.call("ListParts", *in.Key); err != nil {
		return nil, err
	}
	u := f.uploads[aws.ToString(in.UploadId)]
	if u == nil || u.key != *in.Key {
		return nil, &types.NoSuchUpload{Message: aws.String("The specified upload does not exist.")}
	}
	from := 0
	if in.PartNumberMarker != nil {
		from, _ = strconv.Atoi(*in.PartNumberMarker)
	}
	page := f.pageSize
	if page == 0 {
		page = 1000
	}
	var out s3.ListPartsOutput
	for _, p := range u.parts {
		if int(*p.PartNumber) <= from {
			continue
		}
		if len(out.Parts) == page {
			out.IsTruncated = aws.Bool(true)
			out.NextPartNumberMarker = aws.String(strconv.Itoa(int(*out.Parts[len(out.Parts)-1].PartNumber)))
			break
		}
		out.Parts = append(out.Parts, p)
	}
	return &out, nil
}

func (f *fakeStore) CompleteMultipartUpload(_ context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CompleteMultipartUpload", *in.Key); err != nil {
		return nil, err
	}
	u := f.uploads[aws.ToString(in.UploadId)]
	if u == nil || u.key != *in.Key {
		return nil, &types.NoSuchUpload{}
	}
	if _, exists := f.objects[*in.Key]; exists && aws.ToString(in.IfNoneMatch) == "*" {
		return nil, &smithy.GenericAPIError{Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold"}
	}
	f.completed = append(f.completed, in)
	var size int64
	for _, p := range u.parts {
		size += *p.Size
	}
	delete(f.uploads, *in.UploadId)
	body := fakeContent[u.contentType]
	if f.completedBody != nil {
		body = f.completedBody
	}
	f.objects[*in.Key] = fakeObject{size: size, etag: `"final-2"`, modified: testNow, body: body}
	return &s3.CompleteMultipartUploadOutput{ETag: aws.String(`"final-2"`), Key: in.Key}, nil
}

func (f *fakeStore) AbortMultipartUpload(_ context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("AbortMultipartUpload", *in.Key); err != nil {
		return nil, err
	}
	u := f.uploads[aws.ToString(in.UploadId)]
	if u == nil || u.key != *in.Key {
		return nil, &types.NoSuchUpload{}
	}
	f.aborted = append(f.aborted, *in.UploadId)
	delete(f.uploads, *in.UploadId)
	return &s3.AbortMultipartUploadOutput{}, nil
}

// ListObjectsV2 pages through the keys under the prefix in order; its
// continuation token is "after:<last key>".
func (f *fakeStore) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("ListObjectsV2", aws.ToString(in.Prefix)); err != nil {
		return nil, err
	}
	f.listed = append(f.listed, in)
	after := ""
	if in.ContinuationToken != nil {
		var ok bool
		if after, ok = strings.CutPrefix(*in.ContinuationToken, "after:"); !ok {
			return nil, &smithy.GenericAPIError{Code: "InvalidArgument", Message: "The continuation token provided is incorrect"}
		}
	}
	var keys []string
	for k := range f.objects {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) && k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	for _, k := range keys {
		if len(out.Contents) == int(aws.ToInt32(in.MaxKeys)) {
			out.IsTruncated = aws.Bool(true)
			out.NextContinuationToken = aws.String("after:" + *out.Contents[len(out.Contents)-1].Key)
			break
		}
		o := f.objects[k]
		out.Contents = append(out.Contents, types.Object{
			Key: aws.String(k), Size: aws.Int64(o.size), ETag: aws.String(o.etag), LastModified: aws.Time(o.modified),
		})
	}
	return out, nil
}

func (f *fakeStore) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("HeadObject", *in.Key); err != nil {
		return nil, err
	}
	o, ok := f.objects[*in.Key]
	if !ok {
		return nil, &types.NotFound{}
	}
	out := &s3.HeadObjectOutput{
		ContentLength: aws.Int64(o.size), ContentType: aws.String(o.ct), ETag: aws.String(o.etag),
		LastModified: aws.Time(o.modified), Metadata: o.meta,
	}
	if o.sha256 != "" && in.ChecksumMode == types.ChecksumModeEnabled {
		out.ChecksumSHA256 = aws.String(o.sha256)
	}
	return out, nil
}

// GetObject serves the body's bytes in the range "bytes=0-<n>".
func (f *fakeStore) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("GetObject", *in.Key+" "+aws.ToString(in.Range)); err != nil {
		return nil, err
	}
	o, ok := f.objects[*in.Key]
	if !ok {
		return nil, &types.NoSuchKey{}
	}
	body := o.body
	var last int
	if _, err := fmt.Sscanf(aws.ToString(in.Range), "bytes=0-%d", &last); err == nil && last+1 < len(body) {
		body = body[:last+1]
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(body)), ContentLength: aws.Int64(int64(len(body)))}, nil
}

func (f *fakeStore) GetObjectTagging(_ context.Context, in *s3.GetObjectTaggingInput, _ ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("GetObjectTagging", *in.Key); err != nil {
		return nil, err
	}
	o, ok := f.objects[*in.Key]
	if !ok {
		return nil, &types.NoSuchKey{}
	}
	return &s3.GetObjectTaggingOutput{TagSet: slices.Clone(o.tags)}, nil
}

func (f *fakeStore) PutObjectTagging(_ context.Context, in *s3.PutObjectTaggingInput, _ ...func(*s3.Options)) (*s3.PutObjectTaggingOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("PutObjectTagging", *in.Key); err != nil {
		return nil, err
	}
	o, ok := f.objects[*in.Key]
	if !ok {
		return nil, &types.NoSuchKey{}
	}
	o.tags = slices.Clone(in.Tagging.TagSet)
	f.objects[*in.Key] = o
	return &s3.PutObjectTaggingOutput{}, nil
}

func (f *fakeStore) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DeleteObject", *in.Key); err != nil {
		return nil, err
	}
	delete(f.objects, *in.Key)
	return &s3.DeleteObjectOutput{}, nil
}

// ops returns the operations called, without keys.
func (f *fakeStore) ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		op, _, _ := strings.Cut(c, " ")
		out = append(out, op)
	}
	return out
}

// fakePresigner signs nothing: it records its inputs and returns URLs that
// name them and the access key that signed.
type fakePresigner struct {
	mu    sync.Mutex
	puts  []presign.PutRequest
	parts []presign.PartRequest
	gets  []presign.GetRequest
	posts []presign.PostRequest
	keys  []string // access key ids, in call order
	err   error
}

// record appends in to list and the access key of creds, unless p fails.
func record[T any](p *fakePresigner, creds aws.CredentialsProvider, list *[]T, in T) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return "", p.err
	}
	c, err := creds.Retrieve(context.Background())
	if err != nil {
		return "", err
	}
	*list = append(*list, in)
	p.keys = append(p.keys, c.AccessKeyID)
	return c.AccessKeyID, nil
}

func (p *fakePresigner) PutObject(_ context.Context, creds aws.CredentialsProvider, in presign.PutRequest) (*presign.Presigned, error) {
	as, err := record(p, creds, &p.puts, in)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", in.ContentType)
	h.Set("Content-Length", strconv.FormatInt(in.ContentLength, 10))
	for k, v := range in.Metadata {
		h.Set("X-Amz-Meta-"+k, v)
	}
	return &presign.Presigned{Method: http.MethodPut, URL: "https://s3.test/" + in.Key + "?as=" + as, Headers: h, Expires: testNow.Add(in.Expires)}, nil
}

func (p *fakePresigner) UploadPart(_ context.Context, creds aws.CredentialsProvider, in presign.PartRequest) (*presign.Presigned, error) {
	if _, err := record(p, creds, &p.parts, in); err != nil {
		return nil, err
	}
	return &presign.Presigned{
		Method:  http.MethodPut,
		URL:     fmt.Sprintf("https://s3.test/%s?partNumber=%d&uploadId=%s", in.Key, in.PartNumber, in.UploadID),
		Expires: testNow.Add(in.Expires),
	}, nil
}

func (p *fakePresigner) GetObject(_ context.Context, creds aws.CredentialsProvider, in presign.GetRequest) (*presign.Presigned, error) {
	if _, err := record(p, creds, &p.gets, in); err != nil {
		return nil, err
	}
	return &presign.Presigned{Method: http.MethodGet, URL: "https://s3.test/" + in.Key + "?get", Expires: testNow.Add(in.Expires)}, nil
}

func (p *fakePresigner) PostObject(_ context.Context, creds aws.CredentialsProvider, in presign.PostRequest) (*presign.PresignedPost, error) {
	if _, err := record(p, creds, &p.posts, in); err != nil {
		return nil, err
	}
	return &presign.PresignedPost{URL: "https://s3.test/", Fields: map[string]string{"key": in.Key, "policy": "p"}, Expires: testNow.Add(in.Expires)}, nil
}

// userCredentials stands for each user's STS session: its access key id is
// the user's id.
func userCredentials(user policy.Subject) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(user.ID, "secret", "")
}

// env is a test service with its fakes and the hooks it recorded.
type env struct {
	svc       *Service
	store     *fakeStore
	presigner *fakePresigner
	auth      *fakeAuth
	denied    []string
	presigns  []string
	errors    []int
	resolved  Resolved // what the last request resolved
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newEnv(t *testing.T, mod ...func(*Config)) *env {
	t.Helper()
	types, err := contenttype.NewAllowlist([]string{"image/*", "application/pdf", "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: newFakeStore(), presigner: &fakePresigner{}, auth: &fakeAuth{}}
	cfg := Config{
		Bucket:      "bucket",
		Prefix:      "users",
		Store:       e.store,
		Presigner:   e.presigner,
		Credentials: userCredentials,
		Authorizer:  e.auth,
		Types:       types,
		Secret:      testSecret,
		Encryption:  s3limits.Encryption{Mode: "aws:kms", KMSKeyID: "alias/uploads", BucketKey: true},
		OnDenied:    func(a policy.Action) { e.denied = append(e.denied, string(a)) },
		OnPresign:   func(k string) { e.presigns = append(e.presigns, k) },
		OnError:     func(status int, _ error) { e.errors = append(e.errors, status) },
	}
	for _, m := range mod {
		m(&cfg)
	}
	e.svc, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.svc.now = func() time.Time { return testNow }
	n := 0
	e.svc.newID = func() string {
		n++
		return fmt.Sprintf("00000000-0000-0000-0000-%012d", n)
	}
	return e
}

// result is a decoded response envelope.
type result struct {
	status  int
	header  http.Header
	Success bool            `json:"success"`
	Data    json.RawMessage `json:"data"`
	Error   struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// data decodes the data member into v.
func (r result) data(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decoding data %s: %v", r.Data, err)
	}
}

// do sends a request as user (nil: no subject). A body that is not a string
// is sent as JSON.
func (e *env) do(t *testing.T, user *policy.Subject, method, target string, body any) result {
	t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	r := httptest.NewRequest(method, target, rd)
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if user != nil {
		r = r.WithContext(WithSubject(r.Context(), *user))
	}
	e.resolved = Resolved{}
	r = r.WithContext(WithResolved(r.Context(), &e.resolved))
	w := httptest.NewRecorder()
	e.svc.ServeHTTP(w, r)
	res := result{status: w.Code, header: w.Header()}
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
			t.Fatalf("%s %s: body %q is not an envelope: %v", method, target, w.Body.String(), err)
		}
	}
	return res
}

// expect fails unless res has the status (and, for errors, the code).
func expect(t *testing.T, res result, status int, code string) {
	t.Helper()
	if res.status != status || res.Success != (status == http.StatusOK) || code != "" && res.Error.Code != code {
		t.Fatalf("got %d %s %q (data %s), want %d %s", res.status, res.Error.Code, res.Error.Message, res.Data, status, code)
	}
}
