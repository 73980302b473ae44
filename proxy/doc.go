// Package proxy is kiln's pull-through cache: on a miss it fetches
// manifests and blobs from an upstream registry into the store (streaming
// to the client while it writes), revalidates cached tags after their TTL,
// falls back to the cache when the upstream is down, and makes one upstream
// request for concurrent misses of the same content.
//
// An upstream repository is one cache entry, kept under its prefixed name
// (docker.io/library/busybox): pulls by that name, by the docker.io
// mirror's name (library/busybox) and by Docker Hub's short ones (busybox,
// docker.io/busybox) all read it; Aliases points the registry's reads of
// the other names at it.
//
// Upstreams are untrusted: a client gets a cold blob's last bytes only once
// its digest matched, requests follow redirects and token realms only to
// the upstream's own host and its redirect_hosts, and what is fetched is
// bounded (limits.max_blob_size, and a fetch no client waits for stops).
// A mirror copy is never pushed to, and a pushed repository never goes
// upstream.
package proxy
