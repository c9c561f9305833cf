// Package crccombine computes the CRC of two concatenated byte strings from
// the CRCs of each and the length of the second, without the bytes. With it
// a multipart upload's full-object CRC (S3's ChecksumType FULL_OBJECT) is
// built from the CRCs of its parts, and a server checks it the same way.
package crccombine

import "hash/crc32"

// Reversed polynomials of the CRCs S3 supports.
const (
	CRC32     uint64 = crc32.IEEE
	CRC32C    uint64 = crc32.Castagnoli
	CRC64NVME uint64 = 0x9a6c_9329_ac4b_c9b5
)

// Combine returns the CRC of A followed by B, given crcA, crcB and the length
// of B in bytes, for a reflected CRC of width bits (32 or 64) with reversed
// polynomial poly and the usual pre- and post-inversion (as hash/crc32 and
// hash/crc64 compute them). It is zlib's crc32_combine: O(log lenB) GF(2)
// matrix products, nothing per byte.
func Combine(poly uint64, width uint, crcA, crcB uint64, lenB int64) uint64 {
	if lenB <= 0 {
		return crcA
	}
	w := min(width, 64)
	// odd is the operator for one zero bit, then for 4, 16, … bits; even
	// for 2, 8, 32, … bits.
	var odd, even [64]uint64
	odd[0] = poly
	row := uint64(1)
	for n := uint(1); n < w; n++ {
		odd[n] = row
		row <<= 1
	}
	square(even[:w], odd[:w])
	square(odd[:w], even[:w])
	// Apply lenB zero bytes to crcA: one operator per bit of lenB.
	for {
		square(even[:w], odd[:w])
		if lenB&1 != 0 {
			crcA = times(even[:w], crcA)
		}
		if lenB >>= 1; lenB == 0 {
			break
		}
		square(odd[:w], even[:w])
		if lenB&1 != 0 {
			crcA = times(odd[:w], crcA)
		}
		if lenB >>= 1; lenB == 0 {
			break
		}
	}
	return crcA ^ crcB
}

// times multiplies the GF(2) matrix mat by vec.
func times(mat []uint64, vec uint64) uint64 {
	var sum uint64
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

// square sets dst to mat × mat.
func square(dst, mat []uint64) {
	for n := range mat {
		dst[n] = times(mat, mat[n])
	}
}
