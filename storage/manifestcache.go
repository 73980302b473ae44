package storage

import (
	"container/list"
	"sync"

	"github.com/opencontainers/go-digest"
)

// DefaultManifestCacheBytes bounds the in-process manifest cache when
// Options.ManifestCacheBytes is zero.
const DefaultManifestCacheBytes = 16 << 20

// manifestCache holds manifest content by digest, least recently used
// first out once its bytes exceed max. Content under a digest never
// changes, so an entry can never be stale, whatever other instances
// sharing the store do: only the content is cached. Whether a repository
// holds the manifest (its link, with the media type) and where a tag
// points are read from the store on every request, so deletes, tag moves
// and garbage collection by any instance are seen at once.
type manifestCache struct {
	mu    sync.Mutex
	max   int
	size  int
	order *list.List // of *cacheEntry, most recently used first
	byDig map[digest.Digest]*list.Element
}

type cacheEntry struct {
	d       digest.Digest
	content []byte
}

// newManifestCache returns a cache of at most max bytes; nil (no cache)
// when max is negative.
func newManifestCache(max int) *manifestCache {
	if max < 0 {
		return nil
	}
	if max == 0 {
		max = DefaultManifestCacheBytes
	}
	return &manifestCache{max: max, order: list.New(), byDig: map[digest.Digest]*list.Element{}}
}

// get returns the content of d, which the caller must not modify.
func (c *manifestCache) get(d digest.Digest) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byDig[d]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).content, true
}

// add remembers content as the bytes of d. The caller must not modify
// content afterwards. Content larger than a quarter of the cache is not
// kept (it would evict too much for one manifest).
func (c *manifestCache) add(d digest.Digest, content []byte) {
	if c == nil || len(content) > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byDig[d]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.byDig[d] = c.order.PushFront(&cacheEntry{d: d, content: content})
	c.size += len(content)
	for c.size > c.max {
		last := c.order.Back()
		ce := last.Value.(*cacheEntry)
		c.order.Remove(last)
		delete(c.byDig, ce.d)
		c.size -= len(ce.content)
	}
}
