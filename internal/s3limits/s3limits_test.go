package s3limits_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

func TestCheckMetadata(t *testing.T) {
	t.Parallel()
	room := s3limits.MaxMetadataSize - s3limits.UploaderMetadataSize - len("k")
	tests := []struct {
		name    string
		value   int
		reserve int
		wantErr bool
	}{
		{"empty", 0, 0, false},
		{"at the limit", s3limits.MaxMetadataSize - 1, 0, false},
		{"over the limit", s3limits.MaxMetadataSize, 0, true},
		{"room for the uploader's fields", room, s3limits.UploaderMetadataSize, false},
		{"no room for the write id", room + 1, s3limits.UploaderMetadataSize, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := s3limits.CheckMetadata(map[string]string{"k": strings.Repeat("v", tt.value)}, tt.reserve)
			if tt.wantErr != errors.Is(err, s3limits.ErrMetadataTooLarge) || (!tt.wantErr && err != nil) {
				t.Errorf("CheckMetadata() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestUploaderMetadataSize(t *testing.T) {
	t.Parallel()
	// sha256 + 64 hex digits, gateway-write-id + 24 hex digits.
	if s3limits.UploaderMetadataSize != 6+64+16+24 {
		t.Errorf("UploaderMetadataSize = %d", s3limits.UploaderMetadataSize)
	}
	for _, name := range []string{"original-name", "sha256", "size", "uploaded-by", "user-role", "field", "gateway-write-id"} {
		if !s3limits.Reserved(name) {
			t.Errorf("%s is not reserved", name)
		}
	}
	if s3limits.Reserved("title") {
		t.Error("title is reserved")
	}
}
