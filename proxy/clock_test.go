package proxy

import (
	"sync"
	"time"
)

// testClock is the wall clock, moved on by advance: tag ages stay
// comparable with the store's wall-clock dates, and a test passes a TTL or
// a down window without sleeping through it.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// useTestClock makes p and its upstreams measure time on a testClock,
// which it returns. Call it before p serves.
func useTestClock(p *Proxy) *testClock {
	c := &testClock{}
	p.now = c.now
	for _, u := range p.upstreams {
		u.health.mu.Lock()
		u.health.now = c.now
		u.health.mu.Unlock()
	}
	return c
}
