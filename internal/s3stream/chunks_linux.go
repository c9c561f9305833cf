package s3stream

import (
	"fmt"
	"syscall"
)

// slabChunks is how many chunks one memory mapping holds (1 MiB).
const slabChunks = 16

// newSlab maps slabChunks chunks of anonymous memory outside the Go heap.
// Mappings are never unmapped: a chunk may still be read after it was handed
// back (see chunkCache), and release gives its pages back instead.
func newSlab() []*[ChunkSize]byte {
	mem, err := syscall.Mmap(-1, 0, slabChunks*ChunkSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		// Like a failed heap allocation: the process is out of memory.
		panic(fmt.Sprintf("s3stream: mapping part-buffer memory: %v", err))
	}
	slab := make([]*[ChunkSize]byte, slabChunks)
	for i := range slab {
		slab[i] = (*[ChunkSize]byte)(mem[i*ChunkSize : (i+1)*ChunkSize])
	}
	return slab
}

// release gives b's pages back to the kernel; b stays usable (it reads as
// zeros until written). It reports whether b may be reused.
func release(b *[ChunkSize]byte) bool {
	_ = syscall.Madvise(b[:], syscall.MADV_DONTNEED)
	return true
}
