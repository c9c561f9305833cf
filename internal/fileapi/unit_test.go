package fileapi

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// opError wraps err as the SDK does: an OperationError around an AWS
// ResponseError around the service error.
func opError(status int, err error) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "Op", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err},
		RequestID:     "REQ-7",
	}}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var _ net.Error = timeoutError{}

func TestStorageError(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		ctx      context.Context
		notFound error
		err      error
		status   int
		code     string
	}{
		{"NoSuchKey", context.Background(), errNotFound, opError(404, &types.NoSuchKey{}), 404, "FILE_NOT_FOUND"},
		{"HeadObject NotFound", context.Background(), errNotFound, opError(404, &types.NotFound{}), 404, "FILE_NOT_FOUND"},
		{"bare 404 response", context.Background(), errNotFound, opError(404, errors.New("not found, no body")), 404, "FILE_NOT_FOUND"},
		{"NoSuchUpload", context.Background(), errUploadNotFound, opError(404, &types.NoSuchUpload{}), 404, "UPLOAD_NOT_FOUND"},
		{"NoSuchBucket is ours", context.Background(), errNotFound, opError(404, &types.NoSuchBucket{}), 502, "STORAGE_ERROR"},
		{"AccessDenied is ours", context.Background(), errNotFound, opError(403, &smithy.GenericAPIError{Code: "AccessDenied"}), 502, "STORAGE_ERROR"},
		{"server error", context.Background(), errNotFound, opError(500, &smithy.GenericAPIError{Code: "InternalError"}), 502, "STORAGE_ERROR"},
		{"deadline", context.Background(), errNotFound, fmt.Errorf("op: %w", context.DeadlineExceeded), 504, "STORAGE_TIMEOUT"},
		{"net timeout", context.Background(), errNotFound, &smithy.OperationError{Err: timeoutError{}}, 504, "STORAGE_TIMEOUT"},
		{"client went away", cancelled, errNotFound, fmt.Errorf("op: %w", context.Canceled), 499, "CLIENT_CLOSED_REQUEST"},
		{"client went away, any error", cancelled, errNotFound, errors.New("connection reset"), 499, "CLIENT_CLOSED_REQUEST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := storageError(tt.ctx, "Op", tt.notFound, tt.err)
			status, code, msg := classify(err)
			if status != tt.status || code != tt.code {
				t.Errorf("classify(%v) = %d %s, want %d %s", err, status, code, tt.status, tt.code)
			}
			if strings.Contains(msg, "REQ-7") || strings.Contains(msg, "Op") {
				t.Errorf("message %q leaks the S3 error", msg)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{errUnauthenticated, 401, "UNAUTHENTICATED"},
		{fmt.Errorf("%w: upload: x", errDenied), 403, "FORBIDDEN"},
		{errTokenExpired, 403, "UPLOAD_TOKEN_EXPIRED"},
		{fmt.Errorf("%w: bad signature", errInvalidToken), 403, "INVALID_UPLOAD_TOKEN"},
		{fmt.Errorf("%w: x", errTooLarge), 413, "FILE_TOO_LARGE"},
		{&http.MaxBytesError{Limit: 10}, 413, "REQUEST_TOO_LARGE"},
		{errNotJSON, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{fmt.Errorf("%w: declared x/y", contenttype.ErrNotAllowed), 415, "CONTENT_TYPE_NOT_ALLOWED"},
		{badRequest("x"), 400, "BAD_REQUEST"},
		{fmt.Errorf("%w: x", errPartsMismatch), 400, "PARTS_MISMATCH"},
		{errors.New("surprise"), 500, "INTERNAL_ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			if status, code, _ := classify(tt.err); status != tt.status || code != tt.code {
				t.Errorf("classify(%v) = %d %s, want %d %s", tt.err, status, code, tt.status, tt.code)
			}
		})
	}
}

func TestClientCancelled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithCancel(WithSubject(context.Background(), alice))
	cancel()
	e.store.errs["HeadObject"] = context.Canceled
	r := httptest.NewRequestWithContext(ctx, "GET", "/files/"+fileID("users/alice/1/a.txt"), nil)
	w := httptest.NewRecorder()
	e.svc.ServeHTTP(w, r)
	if w.Code != 499 || w.Body.Len() != 0 {
		t.Errorf("got %d %q, want 499 and no body", w.Code, w.Body)
	}
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		client  map[string]string
		file    string
		sha     string
		want    map[string]string
		wantErr error
	}{
		{"none", nil, "a.txt", "", map[string]string{"original-name": "a.txt", "uploaded-by": "alice", "user-role": "uploader"}, nil},
		{"lowercased", map[string]string{"Project-ID": "42", "x_y": "z"}, "a.txt", "",
			map[string]string{"project-id": "42", "x_y": "z", "original-name": "a.txt", "uploaded-by": "alice", "user-role": "uploader"}, nil},
		{"non-ASCII value encoded", map[string]string{"city": "Zürich"}, "中文.txt", "",
			map[string]string{"city": "=?UTF-8?B?WsO8cmljaA==?=", "original-name": "=?UTF-8?B?5Lit5paHLnR4dA==?=", "uploaded-by": "alice", "user-role": "uploader"}, nil},
		{"header injection stripped", map[string]string{"note": "a\r\nX-Evil: 1"}, "a.txt", "",
			map[string]string{"note": "aX-Evil: 1", "original-name": "a.txt", "uploaded-by": "alice", "user-role": "uploader"}, nil},
		{"reserved names dropped", map[string]string{"SHA256": "x", "Original-Name": "y", "size": "1", "field": "f", "uploaded-by": "eve", "user-role": "admin"}, "a.txt", "ff",
			map[string]string{"original-name": "a.txt", "uploaded-by": "alice", "user-role": "uploader", "sha256": "ff"}, nil},
		{"same name twice", map[string]string{"a": "1", "A": "2"}, "a.txt", "", nil, errMetadata},
		{"space in name", map[string]string{"a b": "1"}, "a.txt", "", nil, errMetadata},
		{"dot in name", map[string]string{"a.b": "1"}, "a.txt", "", nil, errMetadata},
		{"non-ASCII name", map[string]string{"ä": "1"}, "a.txt", "", nil, errMetadata},
		{"empty name", map[string]string{"": "1"}, "a.txt", "", nil, errMetadata},
		{"name too long", map[string]string{strings.Repeat("a", 129): "1"}, "a.txt", "", nil, errMetadata},
		{"over 2 KiB", map[string]string{"a": strings.Repeat("x", 1000), "b": strings.Repeat("x", 1000)}, "a.txt", "", nil, s3limits.ErrMetadataTooLarge},
		{"long file name counts", map[string]string{"a": strings.Repeat("x", 1000)}, strings.Repeat("é", 500), "", nil, s3limits.ErrMetadataTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := metadata(tt.client, alice, tt.file, tt.sha)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !maps.Equal(got, tt.want) {
				t.Errorf("metadata = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		patterns []string
		declared string
		want     string
		wantErr  error
	}{
		{"allowed by name", []string{"image/png"}, "image/png", "image/png", nil},
		{"case and parameters", []string{"image/*"}, "Image/PNG; q=1", "image/png", nil},
		{"not allowed", []string{"image/png"}, "image/jpeg", "", contenttype.ErrNotAllowed},
		{"text keeps charset", []string{"text/plain"}, "text/plain; charset=UTF-8", "text/plain; charset=utf-8", nil},
		{"markup is not text/plain", []string{"text/plain"}, "text/html", "", contenttype.ErrNotAllowed},
		{"child of an allowed parent", []string{"application/zip"}, "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", nil},
		{"type unknown to mimetype, listed", []string{"application/x-foo"}, "application/x-foo", "application/x-foo", nil},
		{"octet-stream listed", []string{"application/octet-stream"}, "application/octet-stream", "application/octet-stream", nil},
		{"octet-stream by wildcard", []string{"application/*"}, "application/octet-stream", "application/octet-stream", nil},
		{"octet-stream not listed", []string{"image/*", "text/plain"}, "application/octet-stream", "", contenttype.ErrNotAllowed},
		{"allow all", nil, "application/x-anything", "application/x-anything", nil},
		{"allow all, octet-stream", nil, "application/octet-stream", "application/octet-stream", nil},
		{"empty", []string{"image/png"}, "", "", errBadRequest},
		{"wildcard", nil, "image/*", "", errBadRequest},
		{"no subtype", nil, "image", "", errBadRequest},
		{"garbage", nil, "a b c", "", errBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var list *contenttype.Allowlist
			if tt.patterns != nil {
				var err error
				if list, err = contenttype.NewAllowlist(tt.patterns); err != nil {
					t.Fatal(err)
				}
			}
			s := &Service{cfg: Config{Types: list}}
			got, err := s.checkType(tt.declared)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("checkType(%q) error = %v, want %v", tt.declared, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("checkType(%q) = %q, want %q", tt.declared, got, tt.want)
			}
		})
	}
}

func TestKeyOf(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, key := range []string{"users/alice/1/a.txt", "users/ä/中文 (1).pdf", "users/x/" + strings.Repeat("a", 255)} {
		got, err := e.svc.keyOf(fileID(key))
		if err != nil || got != key {
			t.Errorf("keyOf(fileID(%q)) = %q, %v", key, got, err)
		}
		if strings.ContainsAny(fileID(key), "+/=") {
			t.Errorf("fileID(%q) = %q is not URL-safe", key, fileID(key))
		}
	}
	if _, err := e.svc.keyOf(strings.Repeat("A", maxFileIDLen+4)); !errors.Is(err, errInvalidFileID) {
		t.Errorf("over-long fileId: %v", err)
	}
	if _, err := e.svc.keyOf(""); !errors.Is(err, errInvalidFileID) {
		t.Errorf("empty fileId: %v", err)
	}
}

func TestParseSHA256(t *testing.T) {
	t.Parallel()
	const h = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	const b = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	for _, in := range []string{h, strings.ToUpper(h), b} {
		gotB, gotH, err := parseSHA256("sha256", in)
		if err != nil || gotB != b || gotH != h {
			t.Errorf("parseSHA256(%q) = %q, %q, %v", in, gotB, gotH, err)
		}
	}
	if gotB, gotH, err := parseSHA256("sha256", ""); gotB != "" || gotH != "" || err != nil {
		t.Errorf("parseSHA256(\"\") = %q, %q, %v, want none declared", gotB, gotH, err)
	}
	for _, in := range []string{"xyz", h[:62], b[:40], strings.Repeat("g", 64), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"} {
		if _, _, err := parseSHA256("sha256", in); !errors.Is(err, errBadRequest) {
			t.Errorf("parseSHA256(%q) error = %v", in, err)
		}
	}
}
