package s3stream

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/semaphore"
)

// BufferBudget bounds the part-buffer memory of all uploads that share it.
// An upload that would exceed it waits for buffers to be released, so the
// gateway slows down under load instead of running out of memory.
type BufferBudget struct {
	limit int64
	sem   *semaphore.Weighted
}

// NewBufferBudget returns a budget of limit bytes.
func NewBufferBudget(limit int64) *BufferBudget {
	return &BufferBudget{limit: limit, sem: semaphore.NewWeighted(limit)}
}

// Limit returns the budget in bytes.
func (b *BufferBudget) Limit() int64 { return b.limit }

// slabs reuses part buffers of the same size across uploads.
var slabs sync.Map // int64 -> *sync.Pool

func slabPool(size int64) *sync.Pool {
	if p, ok := slabs.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := slabs.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}})
	return p.(*sync.Pool)
}

// bufferPool hands out at most cap part buffers to one upload.
type bufferPool struct {
	slots  chan struct{}
	budget *BufferBudget
}

func newBufferPool(n int, budget *BufferBudget) *bufferPool {
	return &bufferPool{slots: make(chan struct{}, n), budget: budget}
}

// get returns a buffer of size bytes, waiting for a free slot (and budget).
func (p *bufferPool) get(ctx context.Context, size int64) (*[]byte, error) {
	// Check cancellation first so that it wins over a free slot.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if p.budget != nil {
		if size > p.budget.limit {
			<-p.slots
			return nil, fmt.Errorf("part size %d exceeds the memory budget %d", size, p.budget.limit)
		}
		if err := p.budget.sem.Acquire(ctx, size); err != nil {
			<-p.slots
			return nil, err
		}
	}
	return slabPool(size).Get().(*[]byte), nil
}

// put returns a buffer obtained from get.
func (p *bufferPool) put(b *[]byte) {
	size := int64(len(*b))
	slabPool(size).Put(b)
	if p.budget != nil {
		p.budget.sem.Release(size)
	}
	<-p.slots
}
