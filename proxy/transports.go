package proxy

import (
	"container/list"
	"net/http"
	"sync"
)

// maxTransports bounds the per-repository transports one upstream keeps:
// pulls of ever new names must not grow kiln's memory.
const maxTransports = 512

// transportCache keeps the authenticating transports of the repositories
// of one upstream pulled most recently (each holds a token scoped to its
// repository); the least recently used one goes first.
type transportCache struct {
	mu     sync.Mutex
	max    int
	order  *list.List // of *cachedTransport, most recent first
	byRepo map[string]*list.Element
}

type cachedTransport struct {
	repo string
	rt   http.RoundTripper
}

func newTransportCache(max int) *transportCache {
	return &transportCache{max: max, order: list.New(), byRepo: map[string]*list.Element{}}
}

func (c *transportCache) get(repo string) (http.RoundTripper, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byRepo[repo]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cachedTransport).rt, true
}

func (c *transportCache) put(repo string, rt http.RoundTripper) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byRepo[repo]; ok {
		e.Value.(*cachedTransport).rt = rt
		c.order.MoveToFront(e)
		return
	}
	c.byRepo[repo] = c.order.PushFront(&cachedTransport{repo, rt})
	for c.order.Len() > max(c.max, 1) {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.byRepo, oldest.Value.(*cachedTransport).repo)
	}
}

func (c *transportCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
