package fileapi

import (
	"cmp"
	"context"
	"net/http"

	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/presign"
)

type uploadURLRequest struct {
	FileName       string            `json:"fileName"`
	FileSize       *int64            `json:"fileSize"`
	ContentType    string            `json:"contentType"`
	Metadata       map[string]string `json:"metadata"`
	ChecksumSHA256 string            `json:"checksumSHA256"`
}

type uploadURLResponse struct {
	UploadURL       string            `json:"uploadUrl"`
	FileID          string            `json:"fileId"`
	ExpiresIn       int64             `json:"expiresIn"`
	S3Key           string            `json:"s3Key"`
	RequiredHeaders map[string]string `json:"requiredHeaders"`
	Method          string            `json:"method"`
}

// uploadURL serves POST /files/upload-url: a presigned PUT for one file.
func (s *Service) uploadURL(w http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	var req uploadURLRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return nil, err
	}
	if req.FileSize == nil || *req.FileSize < 1 {
		// A signed Content-Length of 0 is not a PUT S3 servers agree on;
		// empty files go through upload-post (fileSize 0).
		return nil, badRequest("fileSize is required and must be at least 1 (upload an empty file with upload-post)")
	}
	sumB64, sumHex, err := parseSHA256("checksumSHA256", req.ChecksumSHA256)
	if err != nil {
		return nil, err
	}
	key, err := s.uploadKey(r.Context(), user, req.FileName)
	if err != nil {
		return nil, err
	}
	if *req.FileSize > s.cfg.MaxSingleSize {
		return nil, s.tooLargeForSingle(*req.FileSize)
	}
	ct, meta, err := s.typeAndMetadata(req.ContentType, req.Metadata, user, req.FileName, sumHex)
	if err != nil {
		return nil, err
	}
	p, err := s.cfg.Presigner.PutObject(r.Context(), s.cfg.Credentials(user), presign.PutRequest{
		Bucket:             s.cfg.Bucket,
		Key:                key,
		ContentType:        ct,
		ContentLength:      *req.FileSize,
		ChecksumSHA256:     sumB64,
		Metadata:           meta,
		ContentDisposition: objectkey.ContentDisposition(req.FileName),
		Encryption:         s.sse,
		CreateOnly:         s.createOnly(r.Context()),
		Expires:            s.cfg.URLExpiry,
	})
	if err != nil {
		return nil, storageError(r.Context(), "presigning PutObject", errNotFound, err)
	}
	s.presigned("put")
	return uploadURLResponse{
		UploadURL:       p.URL,
		FileID:          fileID(key),
		ExpiresIn:       s.expiresIn(p.Expires, s.cfg.URLExpiry),
		S3Key:           key,
		RequiredHeaders: flatten(p.Headers),
		Method:          cmp.Or(p.Method, http.MethodPut),
	}, nil
}

type uploadPostRequest struct {
	FileName    string            `json:"fileName"`
	FileSize    *int64            `json:"fileSize"`
	ContentType string            `json:"contentType"`
	Metadata    map[string]string `json:"metadata"`
}

type uploadPostResponse struct {
	URL       string            `json:"url"`
	Fields    map[string]string `json:"fields"`
	FileID    string            `json:"fileId"`
	S3Key     string            `json:"s3Key"`
	ExpiresIn int64             `json:"expiresIn"`
	MaxSize   int64             `json:"maxSize"`
}

// uploadPost serves POST /files/upload-post: a presigned POST form for a
// browser. Without fileSize the form admits 1 byte to MaxSingleSize; with
// it, up to fileSize (0 to 0 for an empty file).
func (s *Service) uploadPost(w http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	var req uploadPostRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return nil, err
	}
	if req.FileSize != nil && *req.FileSize < 0 {
		return nil, badRequest("fileSize may not be negative")
	}
	key, err := s.uploadKey(r.Context(), user, req.FileName)
	if err != nil {
		return nil, err
	}
	minSize, maxSize := int64(1), s.cfg.MaxSingleSize
	if req.FileSize != nil {
		if *req.FileSize > s.cfg.MaxSingleSize {
			return nil, s.tooLargeForSingle(*req.FileSize)
		}
		maxSize = *req.FileSize
		minSize = min(minSize, maxSize)
	}
	p, err := s.signPost(r.Context(), user, key, req.FileName, req.ContentType, req.Metadata, minSize, maxSize)
	if err != nil {
		return nil, err
	}
	return uploadPostResponse{
		URL:       p.URL,
		Fields:    p.Fields,
		FileID:    fileID(key),
		S3Key:     key,
		ExpiresIn: s.expiresIn(p.Expires, s.cfg.URLExpiry),
		MaxSize:   maxSize,
	}, nil
}

// signPost checks the content type and metadata of a single upload of
// fileName to key and signs its POST form for minSize to maxSize bytes.
func (s *Service) signPost(ctx context.Context, user policy.Subject, key, fileName, contentType string, client map[string]string, minSize, maxSize int64) (*presign.PresignedPost, error) {
	ct, meta, err := s.typeAndMetadata(contentType, client, user, fileName, "")
	if err != nil {
		return nil, err
	}
	p, err := s.cfg.Presigner.PostObject(ctx, s.postCredentials(user), presign.PostRequest{
		Bucket:      s.cfg.Bucket,
		Key:         key,
		ContentType: ct,
		MinSize:     minSize,
		MaxSize:     maxSize,
		Metadata:    meta,
		Encryption:  s.sse,
		Expires:     s.cfg.URLExpiry,
	})
	if err != nil {
		return nil, storageError(ctx, "presigning POST", errNotFound, err)
	}
	s.presigned("post")
	return p, nil
}
