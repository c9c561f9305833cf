package fileapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/internal/awserr"
	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/createonly"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/presign"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// choosePartSize returns the part size of a multipart upload of fileSize
// bytes and its number of parts. A requested size must be within S3's
// limits; without one the size is max(def, fileSize/10000 rounded up to a
// MiB), so that the file fits in 10,000 parts.
func choosePartSize(fileSize int64, requested *int64, def int64) (int64, int, error) {
	partSize := max(def, ceilDiv(ceilDiv(fileSize, s3limits.MaxParts), 1<<20)<<20)
	if requested != nil {
		partSize = *requested
		if partSize < s3limits.MinPartSize || partSize > s3limits.MaxPartSize {
			return 0, 0, badRequest("partSize must be within %d and %d bytes", s3limits.MinPartSize, s3limits.MaxPartSize)
		}
	}
	total := ceilDiv(fileSize, partSize)
	if total > s3limits.MaxParts {
		return 0, 0, badRequest("fileSize %d in parts of %d bytes needs %d parts, more than %d",
			fileSize, partSize, total, s3limits.MaxParts)
	}
	return partSize, int(total), nil
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

type initiateRequest struct {
	FileName    string            `json:"fileName"`
	FileSize    *int64            `json:"fileSize"`
	ContentType string            `json:"contentType"`
	Metadata    map[string]string `json:"metadata"`
	PartSize    *int64            `json:"partSize"`
}

type partURL struct {
	PartNumber int    `json:"partNumber"`
	URL        string `json:"url"`
	// UploadURL is URL again, under the name seed-style clients read.
	UploadURL string            `json:"uploadUrl"`
	Headers   map[string]string `json:"headers,omitempty"`
}

type initiateResponse struct {
	UploadID    string    `json:"uploadId"`
	FileID      string    `json:"fileId"`
	S3Key       string    `json:"s3Key"`
	PartSize    int64     `json:"partSize"`
	TotalParts  int       `json:"totalParts"`
	PartURLs    []partURL `json:"partUrls"`
	ExpiresIn   int64     `json:"expiresIn"`
	UploadToken string    `json:"uploadToken"`
}

// initiate serves POST /files/multipart/initiate: it creates the multipart
// upload (with the gateway's credentials, encryption and metadata) and
// returns the first batch of part URLs and the upload token.
func (s *Service) initiate(w http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	var req initiateRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return nil, err
	}
	if req.FileSize == nil || *req.FileSize < 1 {
		return nil, badRequest("fileSize is required and must be at least 1")
	}
	fileSize := *req.FileSize
	key, err := s.uploadKey(r.Context(), user, req.FileName)
	if err != nil {
		return nil, err
	}
	if fileSize > s.cfg.MaxFileSize {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", errTooLarge, fileSize, s.cfg.MaxFileSize)
	}
	partSize, total, err := choosePartSize(fileSize, req.PartSize, s.cfg.DefaultPartSize)
	if err != nil {
		return nil, err
	}
	c, err := s.createUpload(r.Context(), user, key, req.FileName, req.ContentType, req.Metadata, fileSize, partSize)
	if err != nil {
		return nil, err
	}
	nums := make([]int, min(total, max(s.cfg.PartBatch, s.cfg.SignAllParts)))
	for i := range nums {
		nums[i] = i + 1
	}
	urls, expiresIn, err := s.signPartURLs(r.Context(), user, c, nums)
	if err != nil {
		s.abortDetached(r.Context(), key, c.UploadID)
		return nil, err
	}
	return initiateResponse{
		UploadID:    c.UploadID,
		FileID:      fileID(key),
		S3Key:       key,
		PartSize:    partSize,
		TotalParts:  total,
		PartURLs:    urls,
		ExpiresIn:   expiresIn,
		UploadToken: s.signToken(c),
	}, nil
}

// createUpload creates the multipart upload of user's new file fileName at
// key, once its content type and the client's metadata pass
// (typeAndMetadata) and within the user's MaxConcurrentInitiates
// (startInitiate), with the gateway's credentials and encryption, and
// returns the claims of its upload token. fileSize and partSize are 0 when
// the client did not declare the size.
func (s *Service) createUpload(ctx context.Context, user policy.Subject, key, fileName, contentType string, client map[string]string, fileSize, partSize int64) (uploadClaims, error) {
	ct, meta, err := s.typeAndMetadata(contentType, client, user, fileName, "")
	if err != nil {
		return uploadClaims{}, err
	}
	done, err := s.startInitiate(user.ID)
	if err != nil {
		return uploadClaims{}, err
	}
	defer done()
	in := &s3.CreateMultipartUploadInput{
		Bucket:             aws.String(s.cfg.Bucket),
		Key:                aws.String(key),
		ContentType:        aws.String(ct),
		ContentDisposition: aws.String(objectkey.ContentDisposition(fileName)),
		Metadata:           meta,
	}
	in.ServerSideEncryption, in.SSEKMSKeyId, in.BucketKeyEnabled, in.SSEKMSEncryptionContext = s.cfg.Encryption.RequestFields()
	callCtx, cancel := s.callCtx(ctx)
	out, err := s.cfg.Store.CreateMultipartUpload(callCtx, in)
	cancel()
	if err != nil {
		return uploadClaims{}, storageError(ctx, "CreateMultipartUpload", errNotFound, err)
	}
	uploadID := aws.ToString(out.UploadId)
	if uploadID == "" {
		return uploadClaims{}, fmt.Errorf("%w: CreateMultipartUpload returned no upload id", errStorage)
	}
	resolved(ctx, key, uploadID)
	return uploadClaims{
		Key:         key,
		UploadID:    uploadID,
		FileSize:    fileSize,
		PartSize:    partSize,
		ContentType: ct,
		Expires:     s.now().Add(s.cfg.UploadTTL).Unix(),
	}, nil
}

// signPartURLs presigns the parts nums of the upload c, each for its exact
// length, valid for URLExpiry but not beyond the token.
func (s *Service) signPartURLs(ctx context.Context, user policy.Subject, c uploadClaims, nums []int) ([]partURL, int64, error) {
	expiry := min(s.cfg.URLExpiry, time.Unix(c.Expires, 0).Sub(s.now()).Truncate(time.Second))
	expiry = max(expiry, time.Second)
	urls := make([]partURL, 0, len(nums))
	var expires time.Time
	for _, n := range nums {
		p, err := s.cfg.Presigner.UploadPart(ctx, s.cfg.Credentials(user), presign.PartRequest{
			Bucket:        s.cfg.Bucket,
			Key:           c.Key,
			UploadID:      c.UploadID,
			PartNumber:    int32(n),
			ContentLength: c.partLength(n),
			Expires:       expiry,
		})
		if err != nil {
			return nil, 0, storageError(ctx, "presigning UploadPart", errUploadNotFound, err)
		}
		s.presigned("part")
		if expires.IsZero() || p.Expires.Before(expires) {
			expires = p.Expires
		}
		urls = append(urls, partURL{PartNumber: n, URL: p.URL, UploadURL: p.URL, Headers: flatten(p.Headers)})
	}
	return urls, s.expiresIn(expires, expiry), nil
}

type signPartsRequest struct {
	FileID      string `json:"fileId"`
	UploadID    string `json:"uploadId"`
	UploadToken string `json:"uploadToken"`
	PartNumbers []int  `json:"partNumbers"`
}

type signPartsResponse struct {
	PartURLs  []partURL `json:"partUrls"`
	ExpiresIn int64     `json:"expiresIn"`
}

// upload resolves the fileId, uploadId and token of a request about a
// multipart upload and authorises it.
func (s *Service) upload(ctx context.Context, user policy.Subject, id, uploadID, token string) (uploadClaims, error) {
	key, err := s.keyOf(id)
	if err != nil {
		return uploadClaims{}, err
	}
	resolved(ctx, key, "")
	if uploadID == "" {
		return uploadClaims{}, badRequest("uploadId is required")
	}
	if token == "" {
		return uploadClaims{}, badRequest("uploadToken is required")
	}
	if err := s.authorize(user, policy.Upload, key); err != nil {
		return uploadClaims{}, err
	}
	c, err := s.verifyToken(token, key, uploadID)
	if err != nil {
		return uploadClaims{}, err
	}
	resolved(ctx, key, c.UploadID)
	return c, nil
}

// signParts serves POST /files/multipart/sign-parts: URLs for up to 100
// parts of an upload the token describes.
func (s *Service) signParts(w http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	var req signPartsRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return nil, err
	}
	c, err := s.upload(r.Context(), user, req.FileID, req.UploadID, req.UploadToken)
	if err != nil {
		return nil, err
	}
	if len(req.PartNumbers) == 0 || len(req.PartNumbers) > maxSignParts {
		return nil, badRequest("partNumbers must hold 1 to %d part numbers", maxSignParts)
	}
	total := c.totalParts()
	seen := make(map[int]bool, len(req.PartNumbers))
	for _, n := range req.PartNumbers {
		if n < 1 || n > total {
			return nil, badRequest("part number %d is not within 1 and %d", n, total)
		}
		if seen[n] {
			return nil, badRequest("part number %d is given twice", n)
		}
		seen[n] = true
	}
	urls, expiresIn, err := s.signPartURLs(r.Context(), user, c, req.PartNumbers)
	if err != nil {
		return nil, err
	}
	return signPartsResponse{PartURLs: urls, ExpiresIn: expiresIn}, nil
}

type partInfo struct {
	PartNumber int32  `json:"partNumber"`
	ETag       string `json:"etag"`
	Size       int64  `json:"size"`
}

type listPartsResponse struct {
	UploadID string     `json:"uploadId"`
	FileID   string     `json:"fileId"`
	Parts    []partInfo `json:"parts"`
}

// listParts serves GET /files/multipart/{uploadId}/parts?fileId=...: the
// parts S3 has, so that a client can resume after a crash.
func (s *Service) listParts(_ http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	uploadID := r.PathValue("uploadId")
	id := r.URL.Query().Get("fileId")
	if id == "" {
		return nil, badRequest("fileId is required")
	}
	key, err := s.fileKey(r.Context(), user, policy.Upload, id)
	if err != nil {
		return nil, err
	}
	parts, err := s.listAllParts(r.Context(), key, uploadID)
	if err != nil {
		return nil, err
	}
	resolved(r.Context(), "", uploadID) // S3 knows it: not just any client string
	resp := listPartsResponse{UploadID: uploadID, FileID: id, Parts: make([]partInfo, 0, len(parts))}
	for _, p := range parts {
		resp.Parts = append(resp.Parts, partInfo{
			PartNumber: aws.ToInt32(p.PartNumber),
			ETag:       trimETag(aws.ToString(p.ETag)),
			Size:       aws.ToInt64(p.Size),
		})
	}
	return resp, nil
}

// listAllParts lists every part of an upload, following the pagination.
func (s *Service) listAllParts(ctx context.Context, key, uploadID string) ([]types.Part, error) {
	var (
		parts  []types.Part
		marker *string
	)
	for {
		callCtx, cancel := s.callCtx(ctx)
		out, err := s.cfg.Store.ListParts(callCtx, &s3.ListPartsInput{
			Bucket:           aws.String(s.cfg.Bucket),
			Key:              aws.String(key),
			UploadId:         aws.String(uploadID),
			PartNumberMarker: marker,
		})
		cancel()
		if err != nil {
			return nil, storageError(ctx, "ListParts", errUploadNotFound, err)
		}
		parts = append(parts, out.Parts...)
		if !aws.ToBool(out.IsTruncated) {
			return parts, nil
		}
		next := aws.ToString(out.NextPartNumberMarker)
		if next == "" || next == aws.ToString(marker) || len(parts) > s3limits.MaxParts {
			return nil, fmt.Errorf("%w: ListParts: the listing does not end", errStorage)
		}
		marker = aws.String(next)
	}
}

// checkParts verifies the parts S3 has against the upload's token: parts
// 1..n, every one but the last exactly PartSize bytes, and in total the
// declared FileSize, at most limit. When the size was not declared, every
// part but the last must be as large as the first (and at least S3's
// minimum), and the last no larger. It returns the total.
func checkParts(parts []types.Part, c uploadClaims, limit int64) (int64, error) {
	var total int64
	for _, p := range parts {
		total += aws.ToInt64(p.Size)
	}
	if total > limit {
		return total, fmt.Errorf("%w: the parts add up to %d bytes, the limit is %d", errTooLarge, total, limit)
	}
	slices.SortFunc(parts, func(a, b types.Part) int {
		return int(aws.ToInt32(a.PartNumber)) - int(aws.ToInt32(b.PartNumber))
	})
	if len(parts) == 0 {
		return 0, fmt.Errorf("%w: no parts were uploaded", errPartsMismatch)
	}
	partSize := c.PartSize
	if !c.sized() {
		partSize = aws.ToInt64(parts[0].Size)
		if len(parts) > 1 && partSize < s3limits.MinPartSize {
			return total, fmt.Errorf("%w: part 1 is %d bytes, less than %d", errPartsMismatch, partSize, s3limits.MinPartSize)
		}
	}
	for i, p := range parts {
		n, size := int(aws.ToInt32(p.PartNumber)), aws.ToInt64(p.Size)
		switch {
		case n != i+1:
			return total, fmt.Errorf("%w: part %d is missing", errPartsMismatch, i+1)
		case i < len(parts)-1 && size != partSize:
			return total, fmt.Errorf("%w: part %d is %d bytes, want %d", errPartsMismatch, n, size, partSize)
		case size > partSize, size < 1:
			return total, fmt.Errorf("%w: part %d is %d bytes, want 1 to %d", errPartsMismatch, n, size, partSize)
		}
	}
	if c.sized() && (total != c.FileSize || len(parts) != c.totalParts()) {
		return total, fmt.Errorf("%w: %d parts of %d bytes in total, declared %d parts of %d bytes",
			errPartsMismatch, len(parts), total, c.totalParts(), c.FileSize)
	}
	return total, nil
}

type completeRequest struct {
	FileID      string `json:"fileId"`
	UploadID    string `json:"uploadId"`
	UploadToken string `json:"uploadToken"`
}

type completeResponse struct {
	FileID string `json:"fileId"`
	S3Key  string `json:"s3Key"`
	Size   int64  `json:"size"`
	ETag   string `json:"etag"`
}

// complete serves POST /files/multipart/complete (see completeUpload).
func (s *Service) complete(w http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	var req completeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return nil, err
	}
	c, err := s.upload(r.Context(), user, req.FileID, req.UploadID, req.UploadToken)
	if err != nil {
		return nil, err
	}
	done, err := s.completeUpload(r.Context(), c)
	if err != nil {
		return nil, err
	}
	return completeResponse{
		FileID: req.FileID,
		S3Key:  done.Key,
		Size:   done.Size,
		ETag:   done.ETag,
	}, nil
}

// completedUpload is what completeUpload stored.
type completedUpload struct {
	Key      string
	Size     int64
	Parts    int
	ETag     string // without quotes
	Location string // as S3 reports it; may be ""
}

// completeUpload completes the multipart upload c (from a verified token)
// and is the one completion of the API, whatever the protocol of the
// route (REST, Uppy's Companion routes and signRequest): the server lists
// the parts itself, never trusting a client's list, and checks them against c; on
// a mismatch, or when create-only finds the key taken, it aborts the
// upload. Once the outcome is final (stored, or aborted) it reports it
// for the upload metrics and audit line (Resolved.Upload), so every
// completion is counted once and alike.
func (s *Service) completeUpload(ctx context.Context, c uploadClaims) (completedUpload, error) {
	parts, err := s.listAllParts(ctx, c.Key, c.UploadID)
	if err != nil {
		return completedUpload{}, err
	}
	// The upload was initiated UploadTTL before its token expires.
	initiated := time.Unix(c.Expires, 0).Add(-s.cfg.UploadTTL)
	outcome := Upload{Method: MethodMultipart, Parts: len(parts), Duration: s.since(initiated, s.cfg.UploadTTL)}
	size, err := checkParts(parts, c, s.cfg.MaxFileSize)
	outcome.Bytes = size
	if err != nil {
		if s.abortDetached(ctx, c.Key, c.UploadID) {
			uploaded(ctx, outcome)
		}
		return completedUpload{}, err
	}
	list := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		list[i] = types.CompletedPart{
			PartNumber:        p.PartNumber,
			ETag:              p.ETag,
			ChecksumCRC32:     p.ChecksumCRC32,
			ChecksumCRC32C:    p.ChecksumCRC32C,
			ChecksumCRC64NVME: p.ChecksumCRC64NVME,
			ChecksumMD5:       p.ChecksumMD5,
			ChecksumSHA1:      p.ChecksumSHA1,
			ChecksumSHA256:    p.ChecksumSHA256,
			ChecksumSHA512:    p.ChecksumSHA512,
			ChecksumXXHASH128: p.ChecksumXXHASH128,
			ChecksumXXHASH3:   p.ChecksumXXHASH3,
			ChecksumXXHASH64:  p.ChecksumXXHASH64,
		}
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.cfg.Bucket),
		Key:             aws.String(c.Key),
		UploadId:        aws.String(c.UploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: list},
	}
	createOnly := s.createOnly(ctx)
	if createOnly {
		in.IfNoneMatch = aws.String("*")
	}
	callCtx, cancel := s.callCtx(ctx)
	out, err := s.cfg.Store.CompleteMultipartUpload(callCtx, in)
	cancel()
	if createOnly && createonly.PreconditionFailed(err) {
		// Something else already stored the key: this upload can never
		// complete, so its parts go.
		if s.abortDetached(ctx, c.Key, c.UploadID) {
			uploaded(ctx, outcome)
		}
		return completedUpload{}, fmt.Errorf("%w: %s", errExists, c.Key)
	}
	if slices.Contains([]string{"InvalidPart", "InvalidPartOrder", "EntityTooSmall"}, awserr.Code(err)) {
		// A part was replaced between listing and completing: the upload
		// is intact, so it is not aborted and the client may try again.
		return completedUpload{}, fmt.Errorf("%w: the parts changed while the upload was completed; try again", errPartsMismatch)
	}
	if err != nil {
		return completedUpload{}, storageError(ctx, "CompleteMultipartUpload", errUploadNotFound, err)
	}
	if err := s.sniffCompleted(ctx, c, size); err != nil {
		uploaded(ctx, outcome)
		return completedUpload{}, err
	}
	outcome.Stored = true
	uploaded(ctx, outcome)
	return completedUpload{Key: c.Key, Size: size, Parts: len(parts), ETag: trimETag(aws.ToString(out.ETag)), Location: aws.ToString(out.Location)}, nil
}

// sniffCompleted checks the first bytes of a completed multipart upload
// as confirm does for single uploads (the bytes went straight to S3, so
// this is the first moment they can be seen): an executable declared
// image/png is deleted and refused with 415. A failure to read or delete
// is a storage error, the object kept.
func (s *Service) sniffCompleted(ctx context.Context, c uploadClaims, size int64) error {
	err := s.checkContent(ctx, c.Key, c.ContentType, size)
	if !errors.Is(err, errTypeMismatch) && !errors.Is(err, contenttype.ErrNotAllowed) {
		return err
	}
	if delErr := s.deleteObject(context.WithoutCancel(ctx), c.Key); delErr != nil {
		return storageError(ctx, "DeleteObject", errNotFound, delErr)
	}
	return fmt.Errorf("%w; the upload was deleted", err)
}

type abortRequest struct {
	FileID   string `json:"fileId"`
	UploadID string `json:"uploadId"`
}

type abortResponse struct {
	Aborted bool `json:"aborted"`
}

// abort serves POST /files/multipart/abort. Whoever may upload to the key,
// or delete it, may abort; no upload token is needed.
func (s *Service) abort(w http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	var req abortRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return nil, err
	}
	key, err := s.keyOf(req.FileID)
	if err != nil {
		return nil, err
	}
	if req.UploadID == "" {
		return nil, badRequest("uploadId is required")
	}
	if err := s.abortUpload(r.Context(), user, key, req.UploadID); err != nil {
		return nil, err
	}
	return abortResponse{Aborted: true}, nil
}

// abortUpload aborts the multipart upload uploadID of key for user, who
// may upload to the key or delete it.
func (s *Service) abortUpload(ctx context.Context, user policy.Subject, key, uploadID string) error {
	resolved(ctx, key, "")
	if err := s.cfg.Authorizer.Authorize(user, policy.Upload, key); err != nil && s.cfg.Authorizer.Authorize(user, policy.Delete, key) != nil {
		return s.denied(policy.Upload, err)
	}
	if err := s.abortMultipart(ctx, key, uploadID); err != nil {
		return storageError(ctx, "AbortMultipartUpload", errUploadNotFound, err)
	}
	resolved(ctx, "", uploadID) // S3 knew it: not just any client string
	return nil
}

// abortMultipart aborts the multipart upload uploadID of key.
func (s *Service) abortMultipart(ctx context.Context, key, uploadID string) error {
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	_, err := s.cfg.Store.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.cfg.Bucket),
		Key:      aws.String(key),
		UploadId: aws.String(uploadID),
	})
	return err
}

// abortDetached aborts an upload even when the request was cancelled, and
// reports whether it did. A failure goes to OnError, as the request fails
// for another reason; the parts stay until a lifecycle rule removes them.
func (s *Service) abortDetached(ctx context.Context, key, uploadID string) bool {
	err := s.abortMultipart(context.WithoutCancel(ctx), key, uploadID)
	if err != nil && s.cfg.OnError != nil {
		s.cfg.OnError(http.StatusBadGateway, fmt.Errorf("%w: aborting multipart upload: %v", errStorage, err))
	}
	return err == nil
}

// trimETag removes the quotes S3 puts around ETags.
func trimETag(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}
