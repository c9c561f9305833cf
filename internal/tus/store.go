package tus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/internal/awserr"
	"github.com/caddy-upload-gateway/upload-gateway/internal/createonly"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// API is the S3 calls the tus handler makes. Usually it is an
// *s3.Client.
type API interface {
	CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(context.Context, *s3.UploadPartInput, ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	UploadPartCopy(context.Context, *s3.UploadPartCopyInput, ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error)
	ListParts(context.Context, *s3.ListPartsInput, ...func(*s3.Options)) (*s3.ListPartsOutput, error)
	CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	ListMultipartUploads(context.Context, *s3.ListMultipartUploadsInput, ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
	PutObjectTagging(context.Context, *s3.PutObjectTaggingInput, ...func(*s3.Options)) (*s3.PutObjectTaggingOutput, error)
}

var (
	// errGone: the upload was terminated, expired or never existed.
	errGone = errors.New("upload not found")
	// errLocked: another request is writing to the upload.
	errLocked = errors.New("upload is locked by another request")
)

// store is one upload's state in S3: the multipart upload and, under
// tempDir, the tail (bytes short of a part, in tail-<offset of its first
// byte>), the lock generations (lock-<n>) and a deferred length (length).
type store struct {
	api     API
	bucket  string
	c       claims
	tempDir string
	// openKey, when quotas are on, marks the upload as open for its
	// owner: <temp prefix>open/<owner hash>/<upload hash>.
	openKey string
	// enc is applied to every object written under tempDir, as to the
	// upload: tails and staged parts hold the user's bytes, and a bucket
	// policy may refuse any write without it.
	enc s3limits.Encryption
}

// put stores b at key with the upload's encryption; what names the
// object in errors. With createOnly (If-None-Match: *) the loser of a
// race gets errLocked.
func (s *store) put(ctx context.Context, key string, b []byte, createOnly bool, what string) error {
	mode, keyID, bucketKey, encCtx := s.enc.RequestFields()
	in := &s3.PutObjectInput{Bucket: &s.bucket, Key: aws.String(key), Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))),
		ServerSideEncryption: mode, SSEKMSKeyId: keyID, BucketKeyEnabled: bucketKey, SSEKMSEncryptionContext: encCtx}
	if createOnly {
		in.IfNoneMatch = aws.String("*")
	}
	_, err := s.api.PutObject(ctx, in)
	switch {
	case createOnly && createonly.PreconditionFailed(err):
		return errLocked
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (h *Handler) store(c claims) *store {
	sum := sha256.Sum256([]byte(c.Key + "\x00" + c.UploadID))
	id := hex.EncodeToString(sum[:16])
	s := &store{api: h.api, bucket: h.cfg.Bucket, c: c, tempDir: h.cfg.TempPrefix + id + "/", enc: h.cfg.Encryption}
	if h.cfg.MaxOpenUploads > 0 {
		s.openKey = h.openDir(c.Owner) + id
	}
	return s
}

// openDir is where the open markers of owner's uploads are.
func (h *Handler) openDir(owner string) string {
	sum := sha256.Sum256([]byte(owner))
	return h.cfg.TempPrefix + "open/" + hex.EncodeToString(sum[:16]) + "/"
}

func (s *store) tailKey(start int64) string  { return fmt.Sprintf("%stail-%020d", s.tempDir, start) }
func (s *store) lockKey(gen int) string      { return fmt.Sprintf("%slock-%08d", s.tempDir, gen) }
func (s *store) lengthKey() string           { return s.tempDir + "length" }
func (s *store) stageKey(start int64) string { return fmt.Sprintf("%sstage-%020d", s.tempDir, start) }
func (s *store) hashKey(end int64) string    { return fmt.Sprintf("%ssha256-%020d", s.tempDir, end) }

// state is what S3 holds of an upload.
type state struct {
	parts    []types.CompletedPart
	partsEnd int64 // bytes in parts
	tail     int64 // bytes in tail-<partsEnd>
	done     bool  // completed: the object exists
	length   int64 // declared length, -1 while deferred
}

func (st state) offset() int64 { return st.partsEnd + st.tail }

// state reads the upload's parts, tail and length from S3.
func (s *store) state(ctx context.Context) (state, error) {
	st := state{length: s.c.Length}
	if s.c.UploadID == "" {
		st.done = true
		return st, nil
	}
	var marker *string
	var last types.Part // the entry kept for the last part number
	for {
		out, err := s.api.ListParts(ctx, &s3.ListPartsInput{Bucket: &s.bucket, Key: &s.c.Key, UploadId: &s.c.UploadID, PartNumberMarker: marker})
		if awserr.NoSuchUpload(err) {
			return s.finished(ctx)
		}
		if err != nil {
			return st, fmt.Errorf("listing parts: %w", err)
		}
		for _, p := range out.Parts {
			n := aws.ToInt32(p.PartNumber)
			if n == int32(len(st.parts)) && n > 0 {
				// A part uploaded again (an SDK retry after a lost
				// answer): SeaweedFS lists every upload of it, AWS only
				// the last. Keep the newest, as completion takes it.
				if aws.ToTime(p.LastModified).Before(aws.ToTime(last.LastModified)) {
					continue
				}
				st.partsEnd -= aws.ToInt64(last.Size)
				st.parts = st.parts[:n-1]
			}
			if int(n) != len(st.parts)+1 {
				return st, fmt.Errorf("part %d follows part %d: upload is inconsistent", n, len(st.parts))
			}
			st.parts = append(st.parts, types.CompletedPart{PartNumber: p.PartNumber, ETag: p.ETag})
			st.partsEnd += aws.ToInt64(p.Size)
			last = p
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextPartNumberMarker) == "" {
			break
		}
		marker = out.NextPartNumberMarker
	}
	head, err := s.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.tailKey(st.partsEnd))})
	switch {
	case err == nil:
		st.tail = aws.ToInt64(head.ContentLength)
	case !notFound(err):
		return st, fmt.Errorf("reading the tail: %w", err)
	}
	if st.length < 0 {
		if st.length, err = s.deferredLength(ctx); err != nil {
			return st, err
		}
	}
	return st, nil
}

// finished is the state of an upload whose multipart upload is gone: done
// if its object exists with the declared length, else gone.
func (s *store) finished(ctx context.Context) (state, error) {
	head, err := s.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &s.c.Key})
	if notFound(err) {
		return state{}, errGone
	}
	if err != nil {
		return state{}, fmt.Errorf("reading the object: %w", err)
	}
	n := aws.ToInt64(head.ContentLength)
	if s.c.Length >= 0 && n != s.c.Length {
		return state{}, errGone
	}
	return state{done: true, partsEnd: n, length: n}, nil
}

// deferredLength reads the length set after creation, -1 if none yet.
func (s *store) deferredLength(ctx context.Context) (int64, error) {
	b, ok, err := s.get(ctx, s.lengthKey(), 32, "reading the deferred length")
	if err != nil || !ok {
		return -1, err
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("deferred length object holds %q", b)
	}
	return n, nil
}

// setLength records a deferred length once; the loser of a race, or a
// second different value, gets errLocked or a mismatch error.
func (s *store) setLength(ctx context.Context, n int64) error {
	return s.put(ctx, s.lengthKey(), []byte(strconv.FormatInt(n, 10)), true, "setting the length")
}

// get reads at most limit bytes of the object key, ok false if it does
// not exist; what names it in errors.
func (s *store) get(ctx context.Context, key string, limit int64, what string) (b []byte, ok bool, err error) {
	out, err := s.api.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(key)})
	if notFound(err) {
		return nil, false, nil
	}
	if err == nil {
		defer out.Body.Close()
		b, err = io.ReadAll(io.LimitReader(out.Body, limit))
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", what, err)
	}
	return b, true, nil
}

// readObject reads len(buf) bytes of the object key into buf.
func (s *store) readObject(ctx context.Context, key string, buf []byte) error {
	out, err := s.api.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("reading %s: %w", key, err)
	}
	defer out.Body.Close()
	if _, err := io.ReadFull(out.Body, buf); err != nil {
		return fmt.Errorf("reading %s: %w", key, err)
	}
	return nil
}

// copyPart makes the staged object key part n of the upload, in S3.
func (s *store) copyPart(ctx context.Context, n int32, key string) (types.CompletedPart, error) {
	out, err := s.api.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: &s.bucket, Key: &s.c.Key, UploadId: &s.c.UploadID,
		PartNumber: aws.Int32(n), CopySource: aws.String(copySource(s.bucket, key))})
	if err != nil {
		return types.CompletedPart{}, fmt.Errorf("copying staged part %d: %w", n, err)
	}
	var etag *string
	if out.CopyPartResult != nil {
		etag = out.CopyPartResult.ETag
	}
	return types.CompletedPart{PartNumber: aws.Int32(n), ETag: etag}, nil
}

// copySource is UploadPartCopy's x-amz-copy-source: bucket/key, each
// path segment URL-encoded.
func copySource(bucket, key string) string {
	return bucket + "/" + strings.ReplaceAll(url.PathEscape(key), "%2F", "/")
}

func (s *store) uploadPart(ctx context.Context, n int32, b []byte) (types.CompletedPart, error) {
	out, err := s.api.UploadPart(ctx, &s3.UploadPartInput{Bucket: &s.bucket, Key: &s.c.Key, UploadId: &s.c.UploadID,
		PartNumber: aws.Int32(n), Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b)))})
	if err != nil {
		return types.CompletedPart{}, fmt.Errorf("uploading part %d: %w", n, err)
	}
	return types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag}, nil
}

func (s *store) complete(ctx context.Context, parts []types.CompletedPart) error {
	_, err := s.api.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &s.bucket, Key: &s.c.Key, UploadId: &s.c.UploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		return fmt.Errorf("completing the upload: %w", err)
	}
	return nil
}

// loadHash returns the SHA-256 state of the upload's bytes before end
// (the end of its parts), nil if it is not stored (a request died
// between uploading a part and storing the state).
func (s *store) loadHash(ctx context.Context, end int64) (hash.Hash, error) {
	h := sha256.New()
	if end == 0 {
		return h, nil
	}
	b, ok, err := s.get(ctx, s.hashKey(end), 1024, "reading the SHA-256 state")
	if err != nil || !ok || h.(encoding.BinaryUnmarshaler).UnmarshalBinary(b) != nil {
		return nil, err
	}
	return h, nil
}

// saveHash stores state, the SHA-256 state of the bytes before end. It is
// written before the part that ends at end, so a request that dies
// between the two leaves a state for an end the parts never reached,
// never parts without their state; the state before it is deleted (see
// [store.dropBefore]) once the part is stored. A failure only costs the
// object its sha256 tag.
func (s *store) saveHash(ctx context.Context, end int64, state []byte) {
	_ = s.put(ctx, s.hashKey(end), state, false, "")
}

// dropBefore deletes, in one request, what a new part ending past pe
// makes obsolete: the tail object at pe when tail is set, and the
// SHA-256 state at pe when hashed.
func (s *store) dropBefore(ctx context.Context, pe int64, tail, hashed bool) {
	var keys []string
	if tail {
		keys = append(keys, s.tailKey(pe))
	}
	if hashed && pe > 0 {
		keys = append(keys, s.hashKey(pe))
	}
	_ = s.deleteKeys(ctx, keys)
}

// tag stores the object's SHA-256 and size as tags, as streamed uploads
// have them.
func (s *store) tag(ctx context.Context, sum string, size int64) error {
	_, err := s.api.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: &s.bucket, Key: &s.c.Key, Tagging: &types.Tagging{TagSet: []types.Tag{
		{Key: aws.String("sha256"), Value: aws.String(sum)}, {Key: aws.String("size"), Value: aws.String(strconv.FormatInt(size, 10))}}}})
	if err != nil {
		return fmt.Errorf("tagging the object: %w", err)
	}
	return nil
}

// completed reports whether S3 holds the upload as an object: a
// completion whose answer was lost may have succeeded.
func (s *store) completed(ctx context.Context) bool {
	st, err := s.state(ctx)
	return err == nil && st.done
}

// abort removes the multipart upload.
func (s *store) abort(ctx context.Context) error {
	_, err := s.api.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &s.c.Key, UploadId: &s.c.UploadID})
	if awserr.NoSuchUpload(err) {
		return errGone
	}
	if err != nil {
		return fmt.Errorf("aborting the upload: %w", err)
	}
	return nil
}

// deleteTemp removes every object under the upload's temporary
// directory, and its open marker; it returns the objects it found there.
func (s *store) deleteTemp(ctx context.Context) ([]listed, error) {
	objs, err := s.listObjects(ctx, s.tempDir)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(objs)+1)
	for _, o := range objs {
		keys = append(keys, o.key)
	}
	if s.openKey != "" {
		keys = append(keys, s.openKey)
	}
	return objs, s.deleteKeys(ctx, keys)
}

// markOpen stores the upload's open marker, which its owner's quota
// counts until the upload is completed, terminated or expired.
func (s *store) markOpen(ctx context.Context) error {
	if s.openKey == "" {
		return nil
	}
	return s.put(ctx, s.openKey, nil, false, "marking the upload open")
}

func (s *store) deleteKeys(ctx context.Context, keys []string) error {
	var errs []error
	for _, k := range keys {
		if _, err := s.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(k)}); err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("deleting %s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

type listed struct {
	key      string
	modified time.Time
	size     int64
}

func (s *store) listObjects(ctx context.Context, prefix string) ([]listed, error) {
	var out []listed
	err := listPages(ctx, s.api, s.bucket, prefix, 0, func(o listed) bool {
		out = append(out, o)
		return true
	})
	return out, err
}

// lock is a writer's hold on an upload: a chain of lock-<n> objects, each
// created with If-None-Match, the newest of which is the holder's (see
// the package doc).
type lock struct {
	s       *store
	timeout time.Duration
	now     func() time.Time
	gens    []int
	renewed time.Time
}

// acquire takes the upload's lock or returns errLocked.
func (s *store) acquire(ctx context.Context, timeout time.Duration, now func() time.Time) (*lock, error) {
	objs, err := s.listObjects(ctx, s.tempDir+"lock-")
	if err != nil {
		return nil, err
	}
	l := &lock{s: s, timeout: timeout, now: now}
	next := 0
	if len(objs) > 0 {
		newest := slices.MaxFunc(objs, func(a, b listed) int { return strings.Compare(a.key, b.key) })
		gen, err := strconv.Atoi(strings.TrimPrefix(newest.key, s.tempDir+"lock-"))
		if err != nil {
			return nil, fmt.Errorf("reading lock %s: %v", newest.key, err)
		}
		if now().Sub(newest.modified) < timeout {
			return nil, errLocked
		}
		next = gen + 1
	}
	if err := l.create(ctx, next); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *lock) create(ctx context.Context, gen int) error {
	if err := l.s.put(ctx, l.s.lockKey(gen), nil, true, "taking the lock"); err != nil {
		return err
	}
	l.gens = append(l.gens, gen)
	l.renewed = l.now()
	return nil
}

// hold makes sure the lock is still ours before a write.
func (l *lock) hold(ctx context.Context) error {
	if l.now().Sub(l.renewed) < l.timeout/2 {
		return nil
	}
	return l.create(ctx, l.gens[len(l.gens)-1]+1)
}

// release deletes the generations this request created, oldest first, so
// the newest stays visible (and others wait) until the last delete.
func (l *lock) release(ctx context.Context) error {
	keys := make([]string, len(l.gens))
	for i, g := range l.gens {
		keys[i] = l.s.lockKey(g)
	}
	return l.s.deleteKeys(ctx, keys)
}

func notFound(err error) bool {
	code := awserr.Code(err)
	return code == "NotFound" || code == "NoSuchKey" || awserr.Is[*types.NoSuchKey](err) || awserr.Is[*types.NotFound](err) || awserr.Status(err) == 404
}
