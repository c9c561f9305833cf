package crccombine

import (
	"hash/crc32"
	"hash/crc64"
	"math/rand/v2"
	"testing"
)

func TestCombine(t *testing.T) {
	c32c := crc32.MakeTable(crc32.Castagnoli)
	c64 := crc64.MakeTable(CRC64NVME)
	algs := []struct {
		name  string
		poly  uint64
		width uint
		sum   func([]byte) uint64
	}{
		{"CRC32", CRC32, 32, func(b []byte) uint64 { return uint64(crc32.ChecksumIEEE(b)) }},
		{"CRC32C", CRC32C, 32, func(b []byte) uint64 { return uint64(crc32.Checksum(b, c32c)) }},
		{"CRC64NVME", CRC64NVME, 64, func(b []byte) uint64 { return crc64.Checksum(b, c64) }},
	}
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 2<<20)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	splits := []struct{ a, b int }{
		{0, 0}, {0, 1}, {1, 0}, {1, 1}, {7, 9}, {1000, 1}, {3, 65536}, {65536, 1 << 20}, {1 << 20, 12345},
	}
	for _, alg := range algs {
		t.Run(alg.name, func(t *testing.T) {
			for _, s := range splits {
				a, b := data[:s.a], data[s.a:s.a+s.b]
				got := Combine(alg.poly, alg.width, alg.sum(a), alg.sum(b), int64(len(b)))
				if want := alg.sum(data[:s.a+s.b]); got != want {
					t.Errorf("split %d+%d: Combine = %#x, want %#x", s.a, s.b, got, want)
				}
			}
		})
	}
}

// A chain of many parts, as a multipart upload builds it.
func TestCombineChain(t *testing.T) {
	tab := crc32.MakeTable(crc32.Castagnoli)
	data := make([]byte, 300000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var full uint64
	for off := 0; off < len(data); off += 7001 {
		part := data[off:min(off+7001, len(data))]
		full = Combine(CRC32C, 32, full, uint64(crc32.Checksum(part, tab)), int64(len(part)))
	}
	if want := uint64(crc32.Checksum(data, tab)); full != want {
		t.Fatalf("chained = %#x, want %#x", full, want)
	}
}

func BenchmarkCombine16MiB(b *testing.B) {
	for b.Loop() {
		Combine(CRC32C, 32, 0x12345678, 0x9abcdef0, 16<<20)
	}
}
