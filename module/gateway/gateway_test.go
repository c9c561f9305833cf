package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func TestClassify(t *testing.T) {
	g := &Gateway{MaxFileSize: 10, AllowedTypes: []string{"image/*"}}
	wrap := func(err error) error { return fmt.Errorf("storing file %q: %w", "a", err) }
	tests := []struct {
		name       string
		err        error
		bodyErr    error
		wantStatus int
		wantCode   string
	}{
		{"request too large", &http.MaxBytesError{Limit: 5}, nil, 413, "REQUEST_TOO_LARGE"},
		{"request too large seen by the body", wrap(s3stream.ErrRead), &http.MaxBytesError{Limit: 5}, 413, "REQUEST_TOO_LARGE"},
		{"client dropped the connection", wrap(fmt.Errorf("%w: %w", s3stream.ErrRead, io.ErrUnexpectedEOF)), io.ErrUnexpectedEOF, 499, "CLIENT_CLOSED_REQUEST"},
		{"request cancelled", wrap(context.Canceled), nil, 499, "CLIENT_CLOSED_REQUEST"},
		{"server read timeout", wrap(fmt.Errorf("%w: %w", s3stream.ErrRead, context.Canceled)), &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, 408, "REQUEST_TIMEOUT"},
		{"broken chunked encoding", wrap(s3stream.ErrRead), errors.New("malformed chunked encoding"), 400, "BODY_READ_ERROR"},
		{"form truncated but body complete", wrap(fmt.Errorf("%w: %w", s3stream.ErrRead, io.ErrUnexpectedEOF)), nil, 400, "MALFORMED_FORM"},
		{"file too large", wrap(s3stream.ErrTooLarge), nil, 413, "FILE_TOO_LARGE"},
		{"too many files", formstream.ErrTooManyFiles, nil, 413, "TOO_MANY_FILES"},
		{"field too large", formstream.ErrFieldTooLarge, nil, 413, "FORM_TOO_LARGE"},
		{"type not allowed", wrap(contenttype.ErrNotAllowed), nil, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"type spoofed", wrap(contenttype.ErrMismatch), nil, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"not a form", formstream.ErrNotMultipart, nil, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"malformed form", formstream.ErrMalformed, nil, 400, "MALFORMED_FORM"},
		{"bad key", objectkey.ErrInvalidKey, nil, 400, "INVALID_KEY"},
		{"metadata too large", errMetadataTooLarge, nil, 400, "METADATA_TOO_LARGE"},
		{"storage timeout", wrap(s3stream.ErrStorageTimeout), nil, 504, "STORAGE_TIMEOUT"},
		{"storage error", wrap(s3stream.ErrStorage), nil, 502, "STORAGE_ERROR"},
		{"unknown", errors.New("boom"), nil, 500, "INTERNAL_ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := g.classify(tt.err, tt.bodyErr)
			if got.status != tt.wantStatus || got.code != tt.wantCode || got.message == "" {
				t.Errorf("classify(%v, %v) = %d %s %q, want %d %s", tt.err, tt.bodyErr, got.status, got.code, got.message, tt.wantStatus, tt.wantCode)
			}
			if strings.Contains(got.message, "boom") {
				t.Errorf("message leaks the internal error: %q", got.message)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	valid := func() *Gateway {
		g := &Gateway{S3Config: shared.S3Config{Bucket: "b", KMSKeyID: "alias/k"}}
		g.ApplyDefaults()
		return g
	}
	tests := []struct {
		name    string
		mutate  func(*Gateway)
		wantErr string
	}{
		{"defaults with a key", func(*Gateway) {}, ""},
		{"no bucket", func(g *Gateway) { g.Bucket = "" }, "bucket is required"},
		{"kms without key", func(g *Gateway) { g.KMSKeyID = "" }, "kms_key_id is required"},
		{"explicitly unencrypted", func(g *Gateway) { g.KMSKeyID = ""; g.Encryption = shared.EncryptionNone }, ""},
		{"sse-s3 with a kms key", func(g *Gateway) { g.Encryption = shared.EncryptionS3 }, "need encryption aws:kms"},
		{"unknown encryption", func(g *Gateway) { g.Encryption = "rot13" }, "unknown encryption"},
		{"part too small", func(g *Gateway) { g.PartSize = 1 << 20 }, "part_size"},
		{"part too large", func(g *Gateway) { g.PartSize = 6 << 30; g.MemoryLimit = 20 << 30 }, "part_size"},
		{"concurrency zero", func(g *Gateway) { g.Concurrency = -1 }, "concurrency"},
		{"unknown checksum", func(g *Gateway) { g.Checksum = "md5" }, "unknown checksum"},
		{"lowercase checksum", func(g *Gateway) { g.Checksum = "sha256" }, ""},
		{"unknown hash", func(g *Gateway) { g.Hash = "md5" }, "unknown hash"},
		{"hash sha256", func(g *Gateway) { g.Hash = HashSHA256 }, ""},
		{"file limit beyond s3", func(g *Gateway) { g.MaxFileSize = 6 << 40 }, "max_file_size"},
		{"memory below one part", func(g *Gateway) { g.MemoryLimit = g.PartSize - 1 }, "memory_limit"},
		{"memory below one grown part", func(g *Gateway) { g.MaxFileSize = 5 << 40; g.MemoryLimit = 512 << 20 }, "memory_limit"},
		{"memory below five grown parts", func(g *Gateway) { g.MaxFileSize = 5 << 40; g.MemoryLimit = 1 << 30 }, "memory_limit"},
		{"memory for five grown parts", func(g *Gateway) { g.MaxFileSize = 5 << 40; g.MemoryLimit = 10 << 30 }, ""},
		{"1 TiB files need 5 parts of 105 MiB", func(g *Gateway) { g.MaxFileSize = 1 << 40; g.MemoryLimit = 500 << 20 }, "memory_limit"},
		{"1 TiB files with room for 5 parts", func(g *Gateway) { g.MaxFileSize = 1 << 40; g.MemoryLimit = 525 << 20 }, ""},
		{"part size above memory/(concurrency+1)", func(g *Gateway) { g.PartSize = 64 << 20; g.MemoryLimit = 256 << 20 }, "memory_limit"},
		{"client memory below two parts", func(g *Gateway) { g.MaxMemoryPerClient = 400 << 20 }, "max_memory_per_client"},
		{"client memory of two parts", func(g *Gateway) { g.MaxMemoryPerClient = 408 << 20 }, ""},
		{"client memory unbounded", func(g *Gateway) { g.MaxMemoryPerClient = -1 }, ""},
		{"client memory negative", func(g *Gateway) { g.MaxMemoryPerClient = -2 }, "max_memory_per_client"},
		{"negative memory_wait", func(g *Gateway) { g.MemoryWait = -1 }, "memory_wait"},
		{"unknown output", func(g *Gateway) { g.Output = "store" }, "unknown output"},
		{"bad rollback status", func(g *Gateway) { g.RollbackOn = []int{42} }, "rollback_on"},
		{"nameless pass field", func(g *Gateway) { g.PassFields = []PassField{{Value: "x"}} }, "no name"},
		{"unsigned payloads", func(g *Gateway) { g.PayloadSigning = shared.PayloadSigningUnsigned }, ""},
		{"nested pass fields", func(g *Gateway) { g.PassFieldStyle = "nested" }, ""},
		{"unknown pass field style", func(g *Gateway) { g.PassFieldStyle = "tame" }, "pass_field_style"},
		{"pass form fields", func(g *Gateway) { g.PassFormFields = []string{"^title$", "^tags\\["} }, ""},
		{"bad pass form field", func(g *Gateway) { g.PassFormFields = []string{"(title"} }, "pass_form_fields"},
		{"non-multipart passed", func(g *Gateway) { g.NonMultipart = "pass" }, ""},
		{"non-multipart rejected", func(g *Gateway) { g.NonMultipart = "reject" }, ""},
		{"unknown non-multipart", func(g *Gateway) { g.NonMultipart = "drop" }, "non_multipart"},
		{"unknown payload signing", func(g *Gateway) { g.PayloadSigning = "sometimes" }, "unknown payload_signing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := valid()
			tt.mutate(g)
			err := g.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRollsBack(t *testing.T) {
	g := &Gateway{RollbackOn: []int{5, 409}}
	for status, want := range map[int]bool{500: true, 503: true, 409: true, 404: false, 200: false, 201: false} {
		if got := g.rollsBack(status); got != want {
			t.Errorf("rollsBack(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestReservedField(t *testing.T) {
	g := &Gateway{PassFields: defaultPassFields(), PassSignature: &PassSignature{Field: "{upload.field}.sig"}}
	g.PassFields = append(g.PassFields, PassField{Name: "upload_count", Value: "{http.upload_gateway.files}"})
	written := []string{"avatar.name", "avatar.key", "avatar.sig"}
	tests := map[string]bool{
		"doc.key": true, "x.sha256": true, "photo.name": true, ".etag": true, "upload_count": true, "doc.sig": true,
		// What PHP reads as avatar_key, and Rack as avatar.key.
		"avatar_key": true, "avatar key": true, " avatar.key": true, "avatar[key": true, "[avatar.key]": true,
		"api_key": true, "first_name": true, "upload count": true, "avatar_sig": true,
		// Nested in a written field.
		"avatar.key[x]": true, "avatar_name[]": true,
		"title": false, "doc": false, "doc.keys": false, "key": false, "my_upload_count": false,
		"avatar[key]": false, "avatar": false, "keys": false, "signature": false,
	}
	reserved := g.reservedNames()
	for _, w := range written {
		reserved.AddName(w)
	}
	for name, want := range tests {
		if got := reserved.Match(name); got != want {
			t.Errorf("reserved.Match(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestStripControl(t *testing.T) {
	if got := stripControl("a\r\nContent-Disposition: x\x00\x7fé"); got != "aContent-Disposition: xé" {
		t.Errorf("stripControl = %q", got)
	}
}

func TestMemoryPerClient(t *testing.T) {
	tests := []struct {
		name        string
		memoryLimit int64
		concurrency int
		set         int64
		want        int64
	}{
		{"default: two parts when above a quarter", 1 << 30, 4, 0, 2 * (204 << 20)},
		{"default: a quarter when above two parts", 8 << 30, 15, 0, 2 << 30},
		{"default: at most memory_limit", 1 << 30, 1, 0, 1 << 30},
		{"set", 1 << 30, 4, 600 << 20, 600 << 20},
		{"off", 1 << 30, 4, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &Gateway{MemoryLimit: tt.memoryLimit, Concurrency: tt.concurrency, MaxMemoryPerClient: tt.set}
			if got := g.memoryPerClient(); got != tt.want {
				t.Errorf("memoryPerClient = %d, want %d", got, tt.want)
			}
		})
	}
}
