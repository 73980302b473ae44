package proxy

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
//
// Blob hits are not heard: the registry serves blobs it holds without
// asking the proxy.
func (p *Proxy) SetCacheObserver(f func(kind, result string)) { p.observe = f }

func (p *Proxy) cacheResult(kind, result string) {
	if p.observe != nil {
		p.observe(kind, result)
	}
}
