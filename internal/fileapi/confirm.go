package fileapi

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/uuid"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// ConfirmedTag is the object tag confirm sets on an object it counted; its
// value is the time of the confirmation (RFC 3339, UTC). An object with it
// is not counted again.
const ConfirmedTag = "upload-gateway-confirmed"

type confirmRequest struct {
	Size   *int64 `json:"size"`
	Type   string `json:"type"`
	SHA256 string `json:"sha256"`
}

type confirmResponse struct {
	FileID      string `json:"fileId"`
	S3Key       string `json:"s3Key"`
	Size        int64  `json:"size"`
	ContentType string `json:"contentType"`
	ETag        string `json:"etag"`
	// Counted is true when this call counted the upload; false when it
	// had been confirmed before, or is counted by other means (a multipart
	// upload on complete, a streamed upload by the gateway).
	Counted bool `json:"counted"`
}

// confirm serves POST /files/{fileId}/confirm, which a client calls after
// it uploaded a file with a presigned PUT URL or POST form, optionally with
// {"size":n,"type":"…","sha256":"…"} as it knows the file. The gateway
// never saw those bytes, so it checks the object now: its size against
// MaxSingleSize and the declared size, its stored type against the
// allow-list and the declared type, its first bytes against its type (when
// the allow-list restricts types), and a declared sha256 against the one
// stored. An object that fails is deleted, and the answer says why (413,
// 415, 400). One that passes is tagged ConfirmedTag. Either way the
// upload's outcome is reported once (Resolved.Upload): a second confirm
// finds the tag, checks nothing and counts nothing.
func (s *Service) confirm(w http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	var req confirmRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req); err != nil {
			return nil, err
		}
	}
	if req.Size != nil && *req.Size < 0 {
		return nil, badRequest("size may not be negative")
	}
	_, wantSum, err := parseSHA256("sha256", req.SHA256)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("fileId")
	key, err := s.fileKey(r.Context(), user, policy.Upload, id)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	callCtx, cancel := s.callCtx(ctx)
	head, err := s.cfg.Store.HeadObject(callCtx, &s3.HeadObjectInput{
		Bucket:       aws.String(s.cfg.Bucket),
		Key:          aws.String(key),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	cancel()
	if err != nil {
		return nil, storageError(ctx, "HeadObject", errNotFound, err)
	}
	resp := confirmResponse{
		FileID:      id,
		S3Key:       key,
		Size:        aws.ToInt64(head.ContentLength),
		ContentType: aws.ToString(head.ContentType),
		ETag:        trimETag(aws.ToString(head.ETag)),
	}
	meta := make(map[string]string, len(head.Metadata)) // lowercase: S3 servers differ in case
	for k, v := range head.Metadata {
		meta[strings.ToLower(k)] = v
	}
	if multipartETag(resp.ETag) || meta[s3limits.MetaWriteID] != "" {
		return resp, nil // counted on complete, or streamed by the gateway
	}
	tags, err := s.tags(ctx, key)
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(tags, func(t types.Tag) bool { return aws.ToString(t.Key) == ConfirmedTag }) {
		return resp, nil
	}

	outcome := Upload{Method: MethodPresigned, Bytes: resp.Size, Duration: s.sinceIssued(key)}
	if err := s.checkConfirmed(ctx, key, req, wantSum, meta, head); err != nil {
		if s.mayDiscard(user, key, meta) {
			if delErr := s.deleteObject(context.WithoutCancel(ctx), key); delErr != nil {
				return nil, storageError(ctx, "DeleteObject", errNotFound, delErr)
			}
			uploaded(ctx, outcome)
		}
		return nil, err
	}
	tags = append(tags, types.Tag{Key: aws.String(ConfirmedTag), Value: aws.String(s.now().UTC().Format(time.RFC3339))})
	callCtx, cancel = s.callCtx(ctx)
	_, err = s.cfg.Store.PutObjectTagging(callCtx, &s3.PutObjectTaggingInput{
		Bucket:  aws.String(s.cfg.Bucket),
		Key:     aws.String(key),
		Tagging: &types.Tagging{TagSet: tags},
	})
	cancel()
	if err != nil {
		return nil, storageError(ctx, "PutObjectTagging", errNotFound, err)
	}
	outcome.Stored = true
	uploaded(ctx, outcome)
	resp.Counted = true
	return resp, nil
}

// checkConfirmed checks an object a client confirms (see confirm).
func (s *Service) checkConfirmed(ctx context.Context, key string, req confirmRequest, wantSum string, meta map[string]string, head *s3.HeadObjectOutput) error {
	size, stored := aws.ToInt64(head.ContentLength), aws.ToString(head.ContentType)
	if size > s.cfg.MaxSingleSize {
		return s.tooLargeForSingle(size)
	}
	if req.Size != nil && *req.Size != size {
		return fmt.Errorf("%w: the object is %d bytes, the client sent %d", errSizeMismatch, size, *req.Size)
	}
	if req.Type != "" && baseType(req.Type) != baseType(stored) {
		return fmt.Errorf("%w: the object is stored as %s, the client sent %s", errTypeMismatch, baseType(stored), baseType(req.Type))
	}
	if _, err := s.checkType(stored); err != nil {
		if errors.Is(err, errBadRequest) { // no media type at all
			return fmt.Errorf("%w: the object has no valid content type", contenttype.ErrNotAllowed)
		}
		return err
	}
	if wantSum != "" {
		got := meta[s3limits.MetaSHA256]
		if got == "" && head.ChecksumSHA256 != nil {
			if raw, err := base64.StdEncoding.DecodeString(*head.ChecksumSHA256); err == nil {
				got = hex.EncodeToString(raw)
			}
		}
		if got != "" && !strings.EqualFold(got, wantSum) {
			return fmt.Errorf("%w: the object's SHA-256 is %s, the client sent %s", errChecksumMismatch, got, wantSum)
		}
	}
	return s.checkContent(ctx, key, stored, size)
}

// checkContent sniffs the first bytes of the object at key, of size bytes,
// against allowed_types and its declared type (a ranged GET), as the
// gateway does with streamed bodies; nothing when every type is allowed.
func (s *Service) checkContent(ctx context.Context, key, declared string, size int64) error {
	if s.cfg.Types.AllowsAll() || size == 0 {
		return nil
	}
	head, err := s.firstBytes(ctx, key, contenttype.SniffLen)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Types.Check(declared, head); err != nil {
		if errors.Is(err, contenttype.ErrMismatch) {
			return fmt.Errorf("%w: %v", errTypeMismatch, err)
		}
		return err
	}
	return nil
}

// firstBytes reads up to n leading bytes of an object with a ranged GET.
func (s *Service) firstBytes(ctx context.Context, key string, n int) ([]byte, error) {
	callCtx, cancel := s.callCtx(ctx)
	defer cancel()
	out, err := s.cfg.Store.GetObject(callCtx, &s3.GetObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(key),
		Range:  aws.String(fmt.Sprintf("bytes=0-%d", n-1)),
	})
	if err != nil {
		return nil, storageError(ctx, "GetObject", errNotFound, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, int64(n)))
	if err != nil {
		return nil, storageError(ctx, "GetObject", errNotFound, err)
	}
	return b, nil
}

// tags returns the tags of an object.
func (s *Service) tags(ctx context.Context, key string) ([]types.Tag, error) {
	callCtx, cancel := s.callCtx(ctx)
	defer cancel()
	out, err := s.cfg.Store.GetObjectTagging(callCtx, &s3.GetObjectTaggingInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		return nil, storageError(ctx, "GetObjectTagging", errNotFound, err)
	}
	return out.TagSet, nil
}

// deleteObject deletes the object at key.
func (s *Service) deleteObject(ctx context.Context, key string) error {
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	_, err := s.cfg.Store.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(key),
	})
	return err
}

// sinceIssued is the time since the gateway chose key, read from the
// version 7 UUID in it (see newKey); 0 for keys without one.
func (s *Service) sinceIssued(key string) time.Duration {
	id, err := uuid.Parse(path.Base(path.Dir(key)))
	if err != nil || id.Version() != 7 {
		return 0
	}
	sec, nsec := id.Time().UnixTime()
	return s.since(time.Unix(sec, nsec), s.cfg.UploadTTL+s.cfg.URLExpiry)
}

// since is the time since t, or 0 when that is not within 0 and limit
// (not plausible: a clock, or the configuration, changed since).
func (s *Service) since(t time.Time, limit time.Duration) time.Duration {
	if d := s.now().Sub(t); d >= 0 && d <= limit {
		return d
	}
	return 0
}

// mayDiscard reports whether a failed confirm by user deletes the object
// at key: when user may delete it anyway, or when it is user's own
// upload (its uploaded-by metadata) issued within the upload window. A
// confirm cannot delete another user's file, nor an old one, that the
// user could not delete otherwise.
func (s *Service) mayDiscard(user policy.Subject, key string, meta map[string]string) bool {
	if s.authorize(user, policy.Delete, key) == nil {
		return true
	}
	return user.ID != "" && meta[s3limits.MetaUploadedBy] == objectkey.MetadataValue(user.ID) && s.sinceIssued(key) > 0
}

// multipartETag reports whether an ETag (without quotes) is a multipart
// upload's: "<hex>-<parts>".
func multipartETag(etag string) bool {
	_, n, ok := strings.Cut(etag, "-")
	return ok && n != "" && strings.Trim(n, "0123456789") == ""
}

// baseType is a media type without parameters, lowercase.
func baseType(s string) string {
	if mt, _, err := mime.ParseMediaType(s); err == nil {
		return mt
	}
	mt, _, _ := strings.Cut(s, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}
