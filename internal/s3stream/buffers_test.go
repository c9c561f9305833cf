package s3stream

import "testing"

// Freed chunks stay resident; a trim releases those beyond idleChunksMax
// that were not used for a whole interval between trims (Linux: kept without
// memory and handed out after the idle ones).
func TestChunkCacheReleasesUnusedChunks(t *testing.T) {
	var c chunkCache
	n := idleChunksMax + 10
	bs := make([]*[ChunkSize]byte, n)
	for i := range bs {
		bs[i] = c.get()
		bs[i][0], bs[i][ChunkSize-1] = 1, 2
	}
	c.put(bs[:5])
	c.put(bs[5:])
	if len(c.idle) != n || !c.trimming {
		t.Fatalf("%d idle chunks, trim scheduled %v; want %d, true", len(c.idle), c.trimming, n)
	}
	c.trim() // starts the interval
	if len(c.idle) != n || !c.trimming {
		t.Fatalf("first trim: %d idle chunks, trim scheduled %v; want %d, true", len(c.idle), c.trimming, n)
	}
	// All used during the interval: nothing is released.
	for i := range bs {
		bs[i] = c.get()
	}
	c.put(bs)
	c.trim()
	if len(c.idle) != n || !c.trimming {
		t.Fatalf("busy interval: %d idle chunks, trim scheduled %v; want %d, true", len(c.idle), c.trimming, n)
	}
	// Three used: the others were not, down to idleChunksMax.
	for range 3 {
		c.get()
	}
	c.put(bs[n-3:])
	c.trim()
	if len(c.idle) != idleChunksMax || c.trimming {
		t.Fatalf("idle interval: %d idle chunks, trim scheduled %v; want %d, false", len(c.idle), c.trimming, idleChunksMax)
	}
	// The most recently freed stay.
	if got := c.get(); got != bs[n-1] {
		t.Errorf("get did not reuse the most recently freed chunk")
	}
	for range idleChunksMax - 1 {
		c.get()
	}
	// Released chunks are still usable.
	b := c.get()
	b[0], b[ChunkSize-1] = 3, 4
	if b[0] != 3 || b[ChunkSize-1] != 4 {
		t.Errorf("released chunk not writable")
	}
}
