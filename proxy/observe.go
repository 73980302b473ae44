package proxy

import "context"

// What the cache did for a pull it handled, as SetCacheObserver hears it.
const (
	KindManifest = "manifest"
	KindBlob     = "blob"

	// ResultHit: served from the store without asking the upstream.
	ResultHit = "hit"
	// ResultMiss: not cached; this request fetched it from the upstream.
	ResultMiss = "miss"
	// ResultCoalesced: not cached; the request waited for another
	// request's fetch of it from the upstream.
	ResultCoalesced = "coalesced"
	// ResultRevalidated: a tag past its TTL that the upstream was asked
	// about (and that was refreshed or re-fetched).
	ResultRevalidated = "revalidated"
	// ResultStale: a tag past its TTL served from the store because the
	// upstream is down or failed.
	ResultStale = "stale"
)

// CacheResults lists every kind and result pair the observer can hear, so
// metrics can start them at zero.
func CacheResults() (kinds, results []string) {
	return []string{KindManifest, KindBlob}, []string{ResultHit, ResultMiss, ResultCoalesced, ResultRevalidated, ResultStale}
}

// SetCacheObserver sets f to hear the outcome of every pull the cache
// handles (metrics listen here). Call it before serving.
func (p *Proxy) SetCacheObserver(f func(kind, result string)) { p.observe = f }

// SetFillObserver sets f to hear of every blob the cache stored, once it
// is stored (the cache's budget listens here). Call it before serving.
func (p *Proxy) SetFillObserver(f func(repo string, bytes int64)) { p.blobStored = f }

// BlobHit counts a GET of a blob the store held, which the registry served
// itself, as a hit when repo is one the cache serves.
func (p *Proxy) BlobHit(ctx context.Context, repo string) {
	if p.observe == nil {
		return
	}
	if loc, err := p.locate(ctx, repo); err == nil && loc.proxied {
		p.cacheResult(KindBlob, ResultHit)
	}
}

func (p *Proxy) cacheResult(kind, result string) {
	if p.observe != nil {
		p.observe(kind, result)
	}
}
