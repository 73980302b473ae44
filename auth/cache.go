package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// cacheTTL is how long a verified password is trusted without bcrypt: long
// enough to cover one push or pull, whose every request carries it.
const cacheTTL = 5 * time.Minute

// maxCached bounds the cache; when full it starts over.
const maxCached = 4096

// verifiedCache remembers (user, password, hash) triples bcrypt accepted.
// Keys are SHA-256 digests, so no password is kept in memory in clear;
// the hash is part of the key, so a changed password never hits.
type verifiedCache struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[[32]byte]time.Time // expiry
}

func newVerifiedCache() *verifiedCache {
	return &verifiedCache{now: time.Now, entries: map[[32]byte]time.Time{}}
}

func cacheKey(user, password string, hash []byte) [32]byte {
	h := sha256.New()
	// NUL separators keep ("ab","c") and ("a","bc") apart: htpasswd names
	// cannot hold NUL and passwords in Basic auth are what follows ':'.
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(password))
	h.Write([]byte{0})
	h.Write(hash)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (c *verifiedCache) has(k [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.entries[k]
	if ok && c.now().After(exp) {
		delete(c.entries, k)
		return false
	}
	return ok
}

func (c *verifiedCache) add(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCached {
		clear(c.entries)
	}
	c.entries[k] = c.now().Add(cacheTTL)
}

// flush forgets everything (the htpasswd file changed).
func (c *verifiedCache) flush() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}
