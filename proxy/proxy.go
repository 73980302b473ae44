package proxy

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"kiln/config"
	"kiln/notify"
	"kiln/storage"
)

// Proxy serves proxied repositories from the store, filling it from the
// upstreams on a miss. It is safe for concurrent use.
type Proxy struct {
	store     *storage.Store
	upstreams map[string]*upstream
	mirror    *upstream // serves un-prefixed names (registry-mirrors)
	log       *slog.Logger

	requests    atomic.Int64                   // every request sent upstream
	blobFetches atomic.Int64                   // blob GETs sent upstream
	mismatches  atomic.Int64                   // upstream content whose bytes did not match its digest
	observe     func(kind, result string)      // see SetCacheObserver
	blobStored  func(repo string, bytes int64) // see SetFillObserver
	notify      *notify.Notifier               // see SetNotifier

	// now is the clock tag ages are measured on (time.Now; tests move it
	// on instead of sleeping). The store dates tags on the wall clock.
	now func() time.Time

	maxBlobSize int64 // limits.max_blob_size, for upstream blobs too; 0: none
	orphanLimit int64 // what a blob fetch reads on once no client waits for it

	mu       sync.Mutex
	inflight map[string]*flight // blob and manifest fetches in progress

	fills sync.WaitGroup // blob fetches and commits that may outlive their request
}

// New returns a proxy for the configured upstreams; nil when there are none.
func New(store *storage.Store, ups []config.Upstream, logger *slog.Logger) (*Proxy, error) {
	if len(ups) == 0 {
		return nil, nil
	}
	if logger == nil {
		logger = slog.Default()
	}
	p := &Proxy{store: store, upstreams: map[string]*upstream{}, log: logger, inflight: map[string]*flight{},
		orphanLimit: defaultOrphanLimit, now: time.Now}
	for _, c := range ups {
		u, err := newUpstream(c, &p.requests, logger)
		if err != nil {
			return nil, err
		}
		p.upstreams[c.Name] = u
		if c.Name == mirrorName {
			p.mirror = u
		}
	}
	return p, nil
}

// defaultOrphanLimit is how much of a blob a fetch reads on after its
// client left (to fill the cache for the next pull) before it gives up.
const defaultOrphanLimit = 64 << 20

// Wait blocks until every cache fill that outlived its request has ended:
// on shutdown, after the server stopped taking requests, so that a blob
// being committed is not cut off.
func (p *Proxy) Wait() { p.fills.Wait() }

// SetMaxBlobSize applies limits.max_blob_size to upstream blobs: a larger
// declared size is refused, a larger body cut short. Call it before
// serving.
func (p *Proxy) SetMaxBlobSize(n int64) { p.maxBlobSize = n }

// DigestMismatches returns how many upstream blobs and manifests did not
// match their digest (and were neither served whole nor cached).
func (p *Proxy) DigestMismatches() int64 { return p.mismatches.Load() }

// UpstreamRequests returns how many requests were sent upstream in all.
func (p *Proxy) UpstreamRequests() int64 { return p.requests.Load() }

// BlobFetches returns how many blob GETs were sent upstream.
func (p *Proxy) BlobFetches() int64 { return p.blobFetches.Load() }

// flight is one upstream fetch that concurrent requests wait for.
type flight struct {
	done    chan struct{}
	err     error
	waiters atomic.Int32 // requests waiting for it besides the leader's
}

// join returns the flight for key and whether the caller leads it (and
// must call finish).
func (p *Proxy) join(key string) (*flight, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.inflight[key]; ok {
		return f, false
	}
	f := &flight{done: make(chan struct{})}
	p.inflight[key] = f
	return f, true
}

func (p *Proxy) finish(key string, f *flight, err error) {
	p.mu.Lock()
	delete(p.inflight, key)
	p.mu.Unlock()
	f.err = err
	close(f.done)
}
