package s3stream

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/internal/awserr"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

const defaultSniffLen = 3072

// chunk is one part read from the body.
type chunk struct {
	num int
	buf *partBuf
	n   int
	eof bool
	sum []byte // the part's checksum, computed while reading
}

// probeMax is how many body bytes an upload waiting for memory reads ahead
// (outside the budget) to notice a client that has gone.
const probeMax = 4 << 10

// upload is the state of one Upload call.
type upload struct {
	u       *Uploader
	obj     Object
	pool    *bufferPool
	acct    *Account // nil without a budget
	body    io.Reader
	eof     bool // body has returned io.EOF
	ck      checksum
	part    hash.Hash // the checksum of the part being read
	full    uint64    // CRC of the bytes read so far (CRC algorithms)
	sum     hash.Hash // full-object SHA-256; nil unless Options.SHA256
	read    int64
	limit   int64  // the most bytes accepted
	pending []byte // bytes read ahead, the start of the next part
	writeID string // stored as metadata, to recognise this write's object later

	mu    sync.Mutex
	err   error
	parts []types.CompletedPart
}

// Upload writes body to obj.Bucket/obj.Key. See the package documentation
// for how it streams and what it does on failure.
func (u *Uploader) Upload(ctx context.Context, obj Object, body io.Reader) (*Result, error) {
	if obj.MaxSize <= 0 || obj.MaxSize >= s3limits.MaxObjectSize {
		obj.MaxSize = 0
	}
	limit := u.MaxObjectSize(obj.MaxSize)
	if obj.Size > limit {
		return nil, fmt.Errorf("%w: %d bytes declared, limit %d", ErrTooLarge, obj.Size, limit)
	}
	if obj.SniffLen <= 0 {
		obj.SniffLen = defaultSniffLen
	}
	ck, err := checksumFor(u.opts.Checksum)
	if err != nil {
		return nil, err
	}
	acct := obj.Account
	if acct == nil && u.opts.Budget != nil {
		acct = u.opts.Budget.Open()
		defer acct.Close()
	}
	up := &upload{
		u:    u,
		obj:  obj,
		acct: acct,
		pool: newBufferPool(u.opts.Concurrency + 1),
		// Read one byte past the limit to tell "exactly at" from "over".
		body:    io.LimitReader(body, limit+1),
		limit:   limit,
		writeID: newWriteID(),
		ck:      ck,
		part:    ck.new(),
	}
	if u.opts.SHA256 {
		up.sum = sha256.New()
	}
	return up.run(ctx)
}

func (up *upload) run(ctx context.Context) (*Result, error) {
	first, err := up.next(ctx, 1)
	if err != nil {
		return nil, err
	}
	if up.obj.Inspect != nil {
		ct, err := up.obj.Inspect(first.buf.head(up.obj.SniffLen))
		if err != nil {
			up.pool.put(first.buf, up.acct)
			return nil, err
		}
		up.obj.ContentType = ct
	}
	if first.eof {
		return up.single(ctx, first)
	}
	// Peek one byte rather than a whole second part: a body that ends
	// exactly at the part boundary is still a single PutObject, and no upload
	// ever holds two buffers before the first is on its way.
	if len(up.pending) > 0 {
		return up.multipart(ctx, first)
	}
	if up.eof {
		return up.single(ctx, first)
	}
	var peek [1]byte
	n, err := io.ReadFull(up.body, peek[:])
	switch {
	case n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF):
		return up.single(ctx, first)
	case n == 0:
		up.pool.put(first.buf, up.acct)
		return nil, readError(ctx, err)
	}
	up.pending = peek[:1]
	return up.multipart(ctx, first)
}

// next reads part num into a pooled buffer.
func (up *upload) next(ctx context.Context, num int) (chunk, error) {
	size := up.u.partSize(up.obj.MaxSize, num)
	buf, err := up.pool.get(ctx)
	if err != nil {
		return chunk{}, readError(ctx, err)
	}
	up.part.Reset()
	eof, err := up.fill(ctx, buf, size)
	up.read += int64(buf.n)
	if err == nil && up.read > up.limit {
		err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, up.limit)
	}
	if err != nil {
		up.pool.put(buf, up.acct)
		if errors.Is(err, ErrMemoryWait) {
			return chunk{}, err
		}
		return chunk{}, readError(ctx, err)
	}
	sum := up.part.Sum(nil)
	if up.ck.fullObject() {
		up.full = up.ck.combine(up.full, up.ck.value(sum), int64(buf.n))
	}
	return chunk{num: num, buf: buf, n: buf.n, eof: eof, sum: sum}, nil
}

// fill reads the body into buf until it holds size bytes or the body ends
// (eof). Memory is taken from the upload's account one chunk at a time,
// just before bytes are read into it.
func (up *upload) fill(ctx context.Context, buf *partBuf, size int64) (eof bool, err error) {
	for int64(buf.n) < size {
		space := buf.space()
		if len(space) == 0 {
			if err := up.reserve(ctx, ChunkSize); err != nil {
				return false, err
			}
			buf.grow()
			space = buf.space()
		}
		space = space[:min(int64(len(space)), size-int64(buf.n))]
		var k int
		switch {
		case len(up.pending) > 0:
			k = copy(space, up.pending)
			up.pending = up.pending[k:]
		case up.eof:
			return true, nil
		default:
			k, err = up.body.Read(space)
		}
		// The checksums are computed here, on bytes just read and still in
		// cache, before they wait in a buffer: S3 then verifies that what it
		// got is what the client sent.
		up.part.Write(space[:k])
		if up.sum != nil {
			up.sum.Write(space[:k])
		}
		buf.n += k
		switch {
		case err == io.EOF:
			up.eof = true
			return true, nil
		case err != nil:
			return false, err
		}
	}
	return false, nil
}

// reserve takes n bytes from the upload's account. While it waits, it
// reads a little of the body ahead (at most probeMax bytes, outside the
// budget): a client that has gone is noticed then, and the wait ends with
// its read error instead of holding a place in the queue.
func (up *upload) reserve(ctx context.Context, n int64) error {
	if up.acct == nil || up.acct.tryAcquire(n, true) {
		return nil
	}
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan error, 1)
	go func() { got <- up.acct.acquire(waitCtx, n, true) }()
	var p [512]byte
	for !up.eof && len(up.pending) < probeMax {
		select {
		case err := <-got:
			return err
		default:
		}
		k, err := up.body.Read(p[:min(len(p), probeMax-len(up.pending))])
		up.pending = append(up.pending, p[:k]...)
		if err == io.EOF {
			up.eof = true
		} else if err != nil {
			cancel()
			if <-got == nil {
				up.acct.release(n, true)
			}
			return err
		}
	}
	return <-got
}

// sha256 is the hex full-object SHA-256, "" unless Options.SHA256.
func (up *upload) sha256() string {
	if up.sum == nil {
		return ""
	}
	return hex.EncodeToString(up.sum.Sum(nil))
}

// checksum is the full-object checksum (base64) of a multipart upload, ""
// when the algorithm has none (SHA1, SHA256: S3 keeps a composite).
func (up *upload) checksum() string {
	if !up.ck.fullObject() {
		return ""
	}
	return up.ck.encode(up.full)
}

// metadata returns a copy of the object's metadata with the write id.
func (up *upload) metadata() map[string]string {
	meta := map[string]string{}
	maps.Copy(meta, up.obj.Metadata)
	meta[s3limits.MetaWriteID] = up.writeID
	return meta
}

// nonEmpty returns a pointer to s, or nil for "".
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (up *upload) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, up.u.opts.CallTimeout)
}

func (up *upload) tagging() string {
	v := url.Values{}
	if sum := up.sha256(); sum != "" {
		v.Set("sha256", sum)
	}
	if sum := up.checksum(); sum != "" {
		v.Set(up.ck.tag(), sum)
	}
	v.Set("size", strconv.FormatInt(up.read, 10))
	return v.Encode()
}

func (up *upload) single(ctx context.Context, c chunk) (*Result, error) {
	defer up.pool.put(c.buf, up.acct)
	meta := up.metadata()
	hexSum := up.sha256()
	if hexSum != "" {
		meta[s3limits.MetaSHA256] = hexSum
	}
	in := &s3.PutObjectInput{
		Bucket:             &up.obj.Bucket,
		Key:                &up.obj.Key,
		Body:               c.buf.reader(),
		ContentLength:      aws.Int64(int64(c.n)),
		Metadata:           meta,
		ChecksumAlgorithm:  up.u.opts.Checksum,
		ContentType:        nonEmpty(up.obj.ContentType),
		ContentDisposition: nonEmpty(up.obj.ContentDisposition),
	}
	in.ServerSideEncryption, in.SSEKMSKeyId, in.BucketKeyEnabled, in.SSEKMSEncryptionContext = up.u.opts.Encryption.RequestFields()
	if up.u.opts.Tags {
		in.Tagging = aws.String(up.tagging())
	}
	// The checksum computed while reading: the SDK does not hash the body
	// again, and S3 verifies it and keeps it as the object's checksum.
	sum64 := base64.StdEncoding.EncodeToString(c.sum)
	setChecksum(up.ck.alg, sum64, &in.ChecksumCRC32, &in.ChecksumCRC32C, &in.ChecksumCRC64NVME, &in.ChecksumSHA1, &in.ChecksumSHA256)
	callCtx, cancel := up.callCtx(ctx)
	defer cancel()
	// A SHA-256 of the body computed while reading is its SigV4 payload
	// hash: the SDK need not hash it again to sign it.
	if hexSum == "" && up.ck.alg == types.ChecksumAlgorithmSha256 {
		hexSum = hex.EncodeToString(c.sum)
	}
	var optFns []func(*s3.Options)
	if hexSum != "" {
		optFns = append(optFns, knownPayloadHash(hexSum))
	}
	out, err := up.u.api.PutObject(callCtx, in, optFns...)
	if err != nil {
		if mayHaveLanded(err) {
			// S3 may still store the body it got (a timed-out request can
			// complete later): remove it if it appears.
			up.u.removeLateWrite(ctx, up.obj.Bucket, up.obj.Key, up.writeID)
		}
		return nil, storageError(ctx, "PutObject", err)
	}
	sum := Checksum{Algorithm: string(up.ck.alg), Type: string(types.ChecksumTypeFullObject), Value: sum64}
	return up.result(out.ETag, out.VersionId, int64(c.n), sum), nil
}

// result describes the object stored, of size bytes.
func (up *upload) result(etag, versionID *string, size int64, sum Checksum) *Result {
	return &Result{Bucket: up.obj.Bucket, Key: up.obj.Key, ETag: strings.Trim(aws.ToString(etag), `"`),
		VersionID: aws.ToString(versionID), ContentType: up.obj.ContentType, Size: size, SHA256: up.sha256(), Checksum: sum}
}

// fail records the first error of the upload.
func (up *upload) fail(err error) {
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.err == nil {
		up.err = err
	}
}

func (up *upload) firstErr() error {
	up.mu.Lock()
	defer up.mu.Unlock()
	return up.err
}

func (up *upload) multipart(ctx context.Context, first chunk) (*Result, error) {
	in := &s3.CreateMultipartUploadInput{
		Bucket:             &up.obj.Bucket,
		Key:                &up.obj.Key,
		Metadata:           up.metadata(),
		ChecksumAlgorithm:  up.u.opts.Checksum,
		ContentType:        nonEmpty(up.obj.ContentType),
		ContentDisposition: nonEmpty(up.obj.ContentDisposition),
	}
	if up.ck.fullObject() {
		// S3 combines the parts' CRCs and checks the whole object's against
		// the one computed while reading (sent on completion).
		in.ChecksumType = types.ChecksumTypeFullObject
	}
	in.ServerSideEncryption, in.SSEKMSKeyId, in.BucketKeyEnabled, in.SSEKMSEncryptionContext = up.u.opts.Encryption.RequestFields()
	callCtx, cancel := up.callCtx(ctx)
	created, err := up.u.api.CreateMultipartUpload(callCtx, in)
	cancel()
	if err != nil {
		up.pool.put(first.buf, up.acct)
		return nil, storageError(ctx, "CreateMultipartUpload", err)
	}
	uploadID := aws.ToString(created.UploadId)

	res, err := up.sendParts(ctx, uploadID, first)
	if err != nil {
		up.u.abort(ctx, up.obj.Bucket, up.obj.Key, uploadID, up.writeID)
		var fe *failure
		if !errors.As(err, &fe) {
			err = &failure{err: err, uploadID: uploadID}
		}
		return nil, err
	}
	return res, nil
}

// sendParts uploads all parts and completes the upload.
func (up *upload) sendParts(ctx context.Context, uploadID string, first chunk) (*Result, error) {
	partCtx, cancelParts := context.WithCancel(ctx)
	defer cancelParts()

	ch := make(chan chunk, up.u.opts.Concurrency)
	var wg sync.WaitGroup
	for range up.u.opts.Concurrency {
		wg.Go(func() {
			for c := range ch {
				if up.firstErr() == nil {
					if err := up.sendPart(partCtx, ctx, uploadID, c); err != nil {
						up.fail(err)
						cancelParts()
					}
				}
				up.pool.put(c.buf, up.acct)
			}
		})
	}

	// Produce parts until the body ends or something fails. Part 1 goes to
	// the workers before the next buffer is asked for, so an upload waiting
	// for memory always has a part in flight that will free some.
	ch <- first
	for num := 2; up.firstErr() == nil; num++ {
		c, err := up.next(partCtx, num)
		if err != nil {
			// A worker's failure cancels partCtx; report that, not the
			// cancellation it caused.
			if !(ctx.Err() == nil && partCtx.Err() != nil && up.firstErr() != nil) {
				up.fail(err)
			}
			break
		}
		if c.n == 0 {
			up.pool.put(c.buf, up.acct)
			break
		}
		if num > s3limits.MaxParts {
			up.pool.put(c.buf, up.acct)
			up.fail(fmt.Errorf("%w: more than %d parts", ErrTooLarge, s3limits.MaxParts))
			break
		}
		ch <- c
		if c.eof {
			break
		}
	}
	close(ch)
	wg.Wait()
	if err := up.firstErr(); err != nil {
		return nil, err
	}

	parts := up.parts
	slices.SortFunc(parts, func(a, b types.CompletedPart) int {
		return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber))
	})
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          &up.obj.Bucket,
		Key:             &up.obj.Key,
		UploadId:        &uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	sum := Checksum{Algorithm: string(up.ck.alg), Type: string(types.ChecksumTypeComposite)}
	if full := up.checksum(); full != "" {
		sum.Type, sum.Value = string(types.ChecksumTypeFullObject), full
		in.ChecksumType = types.ChecksumTypeFullObject
		setChecksum(up.ck.alg, full, &in.ChecksumCRC32, &in.ChecksumCRC32C, &in.ChecksumCRC64NVME, &in.ChecksumSHA1, &in.ChecksumSHA256)
	}
	callCtx, cancel := up.callCtx(ctx)
	defer cancel()
	out, err := up.u.api.CompleteMultipartUpload(callCtx, in)
	if err != nil {
		return nil, storageError(ctx, "CompleteMultipartUpload", err)
	}
	stored := aws.ToString(*checksumField(up.ck.alg, &out.ChecksumCRC32, &out.ChecksumCRC32C, &out.ChecksumCRC64NVME, &out.ChecksumSHA1, &out.ChecksumSHA256))
	switch {
	case sum.Value != "" && out.ChecksumType == types.ChecksumTypeFullObject && stored != sum.Value:
		// S3 verifies the value sent; this only guards against a server
		// that stored something else without saying so.
		_ = up.u.Delete(ctx, up.obj.Bucket, up.obj.Key, aws.ToString(out.VersionId))
		return nil, &failure{err: fmt.Errorf("%w: CompleteMultipartUpload: S3 stored %s %s, the body read has %s",
			ErrStorage, up.ck.alg, stored, sum.Value), uploadID: uploadID}
	case sum.Value == "":
		sum.Value = stored // S3's composite value ("…-N"), if it told
	}
	if out.ChecksumType != "" {
		sum.Type = string(out.ChecksumType)
	}
	res := up.result(out.ETag, out.VersionId, up.read, sum)
	res.Parts, res.UploadID = len(parts), uploadID
	if up.u.opts.Tags {
		if err := up.tag(ctx, res); err != nil {
			// All or nothing: an object without its checksum tags is removed.
			_ = up.u.Delete(ctx, res.Bucket, res.Key, res.VersionID)
			return nil, &failure{err: err, uploadID: uploadID}
		}
	}
	return res, nil
}

func (up *upload) sendPart(ctx, reqCtx context.Context, uploadID string, c chunk) error {
	num := int32(c.num)
	callCtx, cancel := up.callCtx(ctx)
	defer cancel()
	in := &s3.UploadPartInput{
		Bucket:            &up.obj.Bucket,
		Key:               &up.obj.Key,
		UploadId:          &uploadID,
		PartNumber:        &num,
		Body:              c.buf.reader(),
		ContentLength:     aws.Int64(int64(c.n)),
		ChecksumAlgorithm: up.u.opts.Checksum,
	}
	// The part's checksum computed while reading: the SDK does not hash the
	// part again, and S3 verifies it.
	setChecksum(up.ck.alg, base64.StdEncoding.EncodeToString(c.sum),
		&in.ChecksumCRC32, &in.ChecksumCRC32C, &in.ChecksumCRC64NVME, &in.ChecksumSHA1, &in.ChecksumSHA256)
	var optFns []func(*s3.Options)
	if up.ck.alg == types.ChecksumAlgorithmSha256 {
		optFns = append(optFns, knownPayloadHash(hex.EncodeToString(c.sum)))
	}
	out, err := up.u.api.UploadPart(callCtx, in, optFns...)
	if err != nil {
		return storageError(reqCtx, fmt.Sprintf("UploadPart %d", num), err)
	}
	up.mu.Lock()
	up.parts = append(up.parts, types.CompletedPart{
		PartNumber:        &num,
		ETag:              out.ETag,
		ChecksumCRC32:     out.ChecksumCRC32,
		ChecksumCRC32C:    out.ChecksumCRC32C,
		ChecksumCRC64NVME: out.ChecksumCRC64NVME,
		ChecksumSHA1:      out.ChecksumSHA1,
		ChecksumSHA256:    out.ChecksumSHA256,
	})
	up.mu.Unlock()
	return nil
}

func (up *upload) tag(ctx context.Context, res *Result) error {
	callCtx, cancel := up.callCtx(ctx)
	defer cancel()
	in := &s3.PutObjectTaggingInput{
		Bucket:  &res.Bucket,
		Key:     &res.Key,
		Tagging: &types.Tagging{},
	}
	add := func(k, v string) {
		in.Tagging.TagSet = append(in.Tagging.TagSet, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	if res.SHA256 != "" {
		add("sha256", res.SHA256)
	}
	add("size", strconv.FormatInt(res.Size, 10))
	if res.Checksum.Type == string(types.ChecksumTypeFullObject) && res.Checksum.Value != "" {
		add(up.ck.tag(), res.Checksum.Value)
	}
	if res.VersionID != "" {
		in.VersionId = &res.VersionID
	}
	if _, err := up.u.api.PutObjectTagging(callCtx, in); err != nil {
		return storageError(ctx, "PutObjectTagging", err)
	}
	return nil
}

// abort aborts a multipart upload: once now, then in the background until
// AbortTimeout. When S3 no longer knows the upload, it may have completed
// (a CompleteMultipartUpload whose answer was lost): then the object is
// removed if it is this write's.
func (u *Uploader) abort(ctx context.Context, bucket, key, uploadID, writeID string) {
	ctx = context.WithoutCancel(ctx)
	in := &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: &key, UploadId: &uploadID}
	first, cancel := context.WithTimeout(ctx, min(u.opts.CallTimeout, 10*time.Second))
	_, err := u.api.AbortMultipartUpload(first, in)
	cancel()
	switch {
	case err == nil:
		return
	case awserr.NoSuchUpload(err):
		u.removeLateWrite(ctx, bucket, key, writeID)
		return
	}
	u.wg.Go(func() {
		gone := false
		err := u.retry(ctx, func(ctx context.Context) error {
			_, err := u.api.AbortMultipartUpload(ctx, in)
			if awserr.NoSuchUpload(err) {
				gone = true
				return nil
			}
			return err
		})
		if gone {
			u.removeLateWrite(ctx, bucket, key, writeID)
		}
		if err != nil && u.opts.OnAbortFailure != nil {
			u.opts.OnAbortFailure(bucket, key, uploadID, err)
		}
	})
}

func newWriteID() string {
	var b [s3limits.WriteIDLen / 2]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// mayHaveLanded reports whether a failed write may still have been stored:
// S3 did not answer (timeout, connection lost, cancelled), as opposed to
// answering with an error.
func mayHaveLanded(err error) bool {
	return awserr.Status(err) == 0
}

// removeLateWrite deletes bucket/key if and when it holds the object of
// this write (its write id), polling in the background until AbortTimeout:
// S3 may store a request that timed out on our side well after the fact.
// An object with another write id is someone else's and is left alone.
func (u *Uploader) removeLateWrite(ctx context.Context, bucket, key, writeID string) {
	ctx = context.WithoutCancel(ctx)
	u.wg.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, u.opts.AbortTimeout)
		defer cancel()
		wait := 200 * time.Millisecond
		for {
			callCtx, callCancel := context.WithTimeout(ctx, 30*time.Second)
			head, err := u.api.HeadObject(callCtx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
			callCancel()
			if err == nil {
				if head.Metadata[s3limits.MetaWriteID] != writeID {
					return // not ours: a newer write replaced it, or it never landed
				}
				if err := u.Delete(ctx, bucket, key, aws.ToString(head.VersionId)); err != nil && u.opts.OnAbortFailure != nil {
					u.opts.OnAbortFailure(bucket, key, "", err)
				}
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(wait*2, 5*time.Second)
		}
	})
}

// failure is the error of a multipart upload that was aborted.
type failure struct {
	err      error
	uploadID string
}

func (f *failure) Error() string {
	return fmt.Sprintf("upload %s aborted: %v", f.uploadID, f.err)
}

func (f *failure) Unwrap() error { return f.err }

// UploadID returns the id of the aborted multipart upload.
func (f *failure) UploadID() string { return f.uploadID }

// MultipartFailure is implemented by errors of uploads whose multipart upload
// was aborted; use errors.As to reach it.
type MultipartFailure interface {
	error
	UploadID() string
}

var _ MultipartFailure = (*failure)(nil)
