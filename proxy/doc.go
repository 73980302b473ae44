// Package proxy is kiln's pull-through cache: on a miss it fetches
// manifests and blobs from an upstream registry into the store (streaming
// to the client while it writes), revalidates cached tags after their TTL,
// falls back to the cache when the upstream is down, and makes one upstream
// request for concurrent misses of the same content.
package proxy
