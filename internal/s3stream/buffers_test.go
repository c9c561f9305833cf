package s3stream

import "testing"

// Freed chunks are kept with their memory up to idleChunksMax; the rest are
// released (Linux: kept without memory) and handed out after the idle ones.
func TestChunkCacheKeepsBoundedIdleChunks(t *testing.T) {
	var c chunkCache
	bs := make([]*[ChunkSize]byte, idleChunksMax+10)
	for i := range bs {
		bs[i] = c.get()
		bs[i][0], bs[i][ChunkSize-1] = 1, 2
	}
	c.put(bs[:5])
	c.put(bs[5:])
	if len(c.idle) != idleChunksMax {
		t.Fatalf("%d idle chunks kept, want %d", len(c.idle), idleChunksMax)
	}
	if got := c.get(); got != bs[idleChunksMax-1] {
		t.Errorf("get did not reuse the last idle chunk")
	}
	if len(c.idle) != idleChunksMax-1 {
		t.Errorf("%d idle chunks after a get, want %d", len(c.idle), idleChunksMax-1)
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
