package s3stream

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// Sizing is how a handler sizes the parts and memory of its uploads; the
// messages of [Sizing.Validate] name its Caddy options.
type Sizing struct {
	PartSize           int64 // part_size
	Concurrency        int   // concurrency
	MemoryLimit        int64 // memory_limit, the BufferBudget's limit
	MaxFileSize        int64 // max_file_size; 0 for S3's limit
	MaxMemoryPerClient int64 // max_memory_per_client; 0 for the default, -1 for none
}

// Validate checks that parts are within S3's range and that memory_limit
// holds concurrency+1 parts, enough of them for MaxFileSize to fit in
// 10,000, and that a client's memory holds two.
func (s Sizing) Validate() error {
	if s.PartSize < s3limits.MinPartSize || s.PartSize > s3limits.MaxPartSize {
		return fmt.Errorf("part_size %d is outside S3's range of 5 MiB to 5 GiB", s.PartSize)
	}
	if s.Concurrency < 1 || s.Concurrency > 64 {
		return fmt.Errorf("concurrency %d is outside 1 to 64", s.Concurrency)
	}
	if s.MaxFileSize < 0 || s.MaxFileSize > s3limits.MaxObjectSize {
		return fmt.Errorf("max_file_size %d is outside 0 to 5 TiB", s.MaxFileSize)
	}
	partCap := PartCap(s.MemoryLimit, s.Concurrency)
	if partCap < s.PartSize {
		return fmt.Errorf("memory_limit %d holds concurrency+1 = %d parts of at most %d bytes, less than part_size %d: raise memory_limit or lower concurrency",
			s.MemoryLimit, s.Concurrency+1, partCap, s.PartSize)
	}
	if s.MaxFileSize > 0 {
		parts := New(nil, Options{PartSize: s.PartSize, Concurrency: s.Concurrency, MaxPartSize: partCap})
		if most := parts.MaxObjectSize(s.MaxFileSize); most < s.MaxFileSize {
			return fmt.Errorf("max_file_size %d does not fit in 10,000 parts of at most memory_limit/(concurrency+1) = %d bytes (at most %d bytes do): raise memory_limit or lower concurrency",
				s.MaxFileSize, partCap, most)
		}
	}
	if s.MaxMemoryPerClient != -1 && s.MaxMemoryPerClient != 0 && s.MaxMemoryPerClient < 2*partCap {
		return fmt.Errorf("max_memory_per_client %d is below two parts of memory_limit/(concurrency+1) = %d bytes: raise it (or -1 for no bound), or raise concurrency",
			s.MaxMemoryPerClient, partCap)
	}
	return nil
}

// ClientMemory is MaxMemoryPerClient with its default applied (a quarter
// of MemoryLimit, or two parts when larger, at most MemoryLimit), for
// [BufferBudget.SetClientLimit]; 0 for no bound.
func (s Sizing) ClientMemory() int64 {
	switch s.MaxMemoryPerClient {
	case -1:
		return 0
	case 0:
		return min(s.MemoryLimit, max(s.MemoryLimit/4, 2*PartCap(s.MemoryLimit, s.Concurrency)))
	}
	return s.MaxMemoryPerClient
}

// ParseChecksum returns the checksum algorithm named name, in any case:
// CRC32C, CRC32, CRC64NVME, SHA1 or SHA256.
func ParseChecksum(name string) (types.ChecksumAlgorithm, error) {
	switch a := types.ChecksumAlgorithm(strings.ToUpper(name)); a {
	case types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c, types.ChecksumAlgorithmCrc64nvme,
		types.ChecksumAlgorithmSha1, types.ChecksumAlgorithmSha256:
		return a, nil
	}
	return "", fmt.Errorf("unknown checksum %q", name)
}
