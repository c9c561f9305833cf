package fileapi

import (
	"net/http"

	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
)

// Limits is the answer of GET /files/limits: what a page needs to refuse a
// file before uploading it (Uppy's restrictions) and to choose between a
// single upload and a multipart one. The server still checks every upload.
type Limits struct {
	// MaxSingleSize is the largest single PUT or POST upload, in bytes.
	MaxSingleSize int64 `json:"maxSingleSize"`
	// MaxFileSize is the largest file, uploaded in parts, in bytes.
	MaxFileSize int64 `json:"maxFileSize"`
	// PartSize is the part size of multipart uploads the server chooses
	// when the client gives none.
	PartSize int64 `json:"partSize"`
	// AllowedTypes are the allowed content type patterns ("image/png",
	// "text/*"); empty when every type is allowed. The server also
	// accepts types these name as parents or aliases.
	AllowedTypes []string `json:"allowedTypes"`
	// MultipartThreshold is the size above which a client should upload
	// in parts: the smaller of PartSize and MaxSingleSize, so a file that
	// fits in one part goes in one request, and every larger one can be
	// paused and resumed.
	MultipartThreshold int64 `json:"multipartThreshold"`
}

// limits answers GET /files/limits for any signed-in user.
func (s *Service) limits(_ http.ResponseWriter, _ *http.Request, _ policy.Subject) (any, error) {
	types := s.cfg.Types.Patterns()
	if types == nil {
		types = []string{}
	}
	return Limits{
		MaxSingleSize:      s.cfg.MaxSingleSize,
		MaxFileSize:        s.cfg.MaxFileSize,
		PartSize:           s.cfg.DefaultPartSize,
		AllowedTypes:       types,
		MultipartThreshold: min(s.cfg.DefaultPartSize, s.cfg.MaxSingleSize),
	}, nil
}
