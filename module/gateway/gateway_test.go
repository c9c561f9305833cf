package gateway

import (
	"strings"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

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
