package policy

import (
	"sync"
	"time"
)

// tokenCache holds verified JWTs keyed by a 64-bit hash of the token (the
// entry keeps the token, compared on every hit). It is split into shards so
// parallel requests rarely share a lock, and bounded: a full shard first
// drops entries past their deadline, then an arbitrary eighth of the rest
// (map iteration order is random), so the bound holds without an LRU list.
type tokenCache struct {
	shards   []tokenShard
	perShard int
}

type tokenShard struct {
	mu sync.RWMutex
	m  map[uint64]*jwtEntry
	_  [32]byte // with the 24-byte RWMutex and the map: one 64-byte cache line
}

// newTokenCache bounds the cache to size entries in total.
func newTokenCache(size int) *tokenCache {
	n := 1
	if size >= 1024 {
		n = 16
	}
	c := &tokenCache{shards: make([]tokenShard, n), perShard: max(1, size/n)}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*jwtEntry)
	}
	return c
}

func (c *tokenCache) shard(h uint64) *tokenShard {
	return &c.shards[(h>>32)%uint64(len(c.shards))]
}

// get returns the entry for h, or nil. It does not allocate.
func (c *tokenCache) get(h uint64) *jwtEntry {
	s := c.shard(h)
	s.mu.RLock()
	e := s.m[h]
	s.mu.RUnlock()
	return e
}

func (c *tokenCache) drop(h uint64) {
	s := c.shard(h)
	s.mu.Lock()
	delete(s.m, h)
	s.mu.Unlock()
}

func (c *tokenCache) add(h uint64, ent *jwtEntry, now time.Time) {
	s := c.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= c.perShard {
		for k, e := range s.m {
			if !now.Before(e.until) {
				delete(s.m, k)
			}
		}
		if n := len(s.m) - c.perShard*7/8; n >= 0 {
			for k := range s.m {
				delete(s.m, k)
				if n--; n < 0 {
					break
				}
			}
		}
	}
	s.m[h] = ent
}

// len returns the number of entries.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// reset empties the cache.
func (c *tokenCache) reset() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
}
