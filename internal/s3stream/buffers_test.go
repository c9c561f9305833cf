package s3stream

import "testing"

// Freed chunks are kept for reuse up to idleChunksMax, past any GC; the
// rest go to the sync.Pool.
func TestChunkCacheKeepsBoundedIdleChunks(t *testing.T) {
	var c chunkCache
	c.pool.New = func() any { return new([ChunkSize]byte) }
	bs := make([]*[ChunkSize]byte, idleChunksMax+10)
	for i := range bs {
		bs[i] = c.get()
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
}
