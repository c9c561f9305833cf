package fileapi

import (
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/internal/awserr"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/presign"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

type fileEntry struct {
	FileID       string    `json:"fileId"`
	S3Key        string    `json:"s3Key"`
	FileName     string    `json:"fileName"`
	Size         int64     `json:"size"`
	LastModified time.Time `json:"lastModified"`
	ETag         string    `json:"etag"`
}

type listResponse struct {
	Files      []fileEntry `json:"files"`
	NextCursor *string     `json:"nextCursor"`
}

// maxCursorLen bounds the cursor a client sends back.
const maxCursorLen = 4096

// list serves GET /files?scope=own|all&limit=&cursor=: one page of the
// files under the prefix the Authorizer gives. limit defaults to 100 and is
// capped at 1000; nextCursor is null on the last page.
func (s *Service) list(_ http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	q := r.URL.Query()
	var all bool
	switch q.Get("scope") {
	case "", "own":
	case "all":
		all = true
	default:
		return nil, badRequest("scope must be own or all")
	}
	limit := defaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, badRequest("limit must be a positive integer")
		}
		limit = min(n, maxListLimit)
	}
	cursor := q.Get("cursor")
	if len(cursor) > maxCursorLen {
		return nil, badRequest("invalid cursor")
	}
	prefix, err := s.cfg.Authorizer.ListPrefix(user, all)
	if err != nil {
		return nil, s.denied(policy.List, err)
	}
	in := &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.cfg.Bucket),
		Prefix:  aws.String(prefix),
		MaxKeys: aws.Int32(int32(limit)),
	}
	if cursor != "" {
		in.ContinuationToken = aws.String(cursor)
	}
	ctx, cancel := s.callCtx(r.Context())
	out, err := s.cfg.Store.ListObjectsV2(ctx, in)
	cancel()
	if err != nil {
		if cursor != "" && awserr.Code(err) == "InvalidArgument" {
			return nil, badRequest("invalid cursor")
		}
		return nil, storageError(r.Context(), "ListObjectsV2", errNotFound, err)
	}
	resp := listResponse{Files: make([]fileEntry, 0, len(out.Contents))}
	for _, o := range out.Contents {
		key := aws.ToString(o.Key)
		if key == "" || strings.HasSuffix(key, "/") {
			continue // a "folder" marker, not a file
		}
		resp.Files = append(resp.Files, fileEntry{
			FileID:       fileID(key),
			S3Key:        key,
			FileName:     path.Base(key),
			Size:         aws.ToInt64(o.Size),
			LastModified: aws.ToTime(o.LastModified).UTC(),
			ETag:         trimETag(aws.ToString(o.ETag)),
		})
	}
	if aws.ToBool(out.IsTruncated) && aws.ToString(out.NextContinuationToken) != "" {
		resp.NextCursor = out.NextContinuationToken
	}
	return resp, nil
}

type fileDetails struct {
	FileID       string            `json:"fileId"`
	S3Key        string            `json:"s3Key"`
	FileName     string            `json:"fileName"`
	Size         int64             `json:"size"`
	ContentType  string            `json:"contentType"`
	ETag         string            `json:"etag"`
	LastModified time.Time         `json:"lastModified"`
	SHA256       string            `json:"sha256"`
	UploadedBy   string            `json:"uploadedBy"`
	Metadata     map[string]string `json:"metadata"`
}

// stat resolves a fileId, authorises action on it, and heads the object.
func (s *Service) stat(r *http.Request, user policy.Subject, action policy.Action) (fileDetails, error) {
	id := r.PathValue("fileId")
	key, err := s.fileKey(r.Context(), user, action, id)
	if err != nil {
		return fileDetails{}, err
	}
	ctx, cancel := s.callCtx(r.Context())
	out, err := s.cfg.Store.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(key),
	})
	cancel()
	if err != nil {
		return fileDetails{}, storageError(r.Context(), "HeadObject", errNotFound, err)
	}
	d := fileDetails{
		FileID:       id,
		S3Key:        key,
		FileName:     path.Base(key),
		Size:         aws.ToInt64(out.ContentLength),
		ContentType:  aws.ToString(out.ContentType),
		ETag:         trimETag(aws.ToString(out.ETag)),
		LastModified: aws.ToTime(out.LastModified).UTC(),
		Metadata:     map[string]string{},
	}
	for k, v := range out.Metadata {
		if dec, err := objectkey.DecodeMetadataValue(v); err == nil {
			v = dec
		}
		switch k = strings.ToLower(k); {
		case k == "original-name":
			if v != "" {
				d.FileName = v
			}
		case k == "sha256":
			d.SHA256 = v
		case k == "uploaded-by":
			d.UploadedBy = v
		case !s3limits.Reserved(k):
			d.Metadata[k] = v
		}
	}
	return d, nil
}

// head serves GET /files/{fileId}.
func (s *Service) head(_ http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	return s.stat(r, user, policy.Download)
}

type downloadResponse struct {
	DownloadURL string `json:"downloadUrl"`
	ExpiresIn   int64  `json:"expiresIn"`
	FileName    string `json:"fileName"`
}

// downloadURL serves GET /files/{fileId}/download-url: a presigned GET
// that downloads the file as an attachment under its original name.
func (s *Service) downloadURL(_ http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	d, err := s.stat(r, user, policy.Download)
	if err != nil {
		return nil, err
	}
	p, err := s.cfg.Presigner.GetObject(r.Context(), s.cfg.Credentials(user), presign.GetRequest{
		Bucket:   s.cfg.Bucket,
		Key:      d.S3Key,
		FileName: d.FileName,
		Expires:  s.cfg.URLExpiry,
	})
	if err != nil {
		return nil, storageError(r.Context(), "presigning GetObject", errNotFound, err)
	}
	s.presigned("get")
	return downloadResponse{
		DownloadURL: p.URL,
		ExpiresIn:   s.expiresIn(p.Expires, s.cfg.URLExpiry),
		FileName:    d.FileName,
	}, nil
}

type deleteResponse struct {
	Deleted bool   `json:"deleted"`
	FileID  string `json:"fileId"`
}

// delete serves DELETE /files/{fileId}. Like S3, it succeeds for a file
// that does not exist.
func (s *Service) delete(_ http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	id := r.PathValue("fileId")
	key, err := s.fileKey(r.Context(), user, policy.Delete, id)
	if err != nil {
		return nil, err
	}
	if err := s.deleteObject(r.Context(), key); err != nil {
		return nil, storageError(r.Context(), "DeleteObject", errNotFound, err)
	}
	return deleteResponse{Deleted: true, FileID: id}, nil
}
