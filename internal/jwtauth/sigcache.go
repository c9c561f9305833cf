package jwtauth

import (
	"crypto/sha256"
	"sync"
)

// sigCacheSize bounds the signature cache; when full it starts over.
const sigCacheSize = 10000

// sigCache remembers tokens whose signature verified under a given key set,
// so that a client sending the same token on every request costs one
// public-key operation, not one per request. Claims are still checked on
// every call. Entries belong to a key set: when the keys change (rotation,
// refresh), every token is verified again.
type sigCache struct {
	mu      sync.RWMutex
	keys    *keySet
	entries map[[sha256.Size]byte]struct{}
}

func (c *sigCache) has(digest [sha256.Size]byte, ks *keySet) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.keys != ks {
		return false
	}
	_, ok := c.entries[digest]
	return ok
}

func (c *sigCache) add(digest [sha256.Size]byte, ks *keySet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys != ks || len(c.entries) >= sigCacheSize {
		c.keys = ks
		c.entries = make(map[[sha256.Size]byte]struct{}, 64)
	}
	c.entries[digest] = struct{}{}
}
