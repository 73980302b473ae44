// Package registry serves the OCI Distribution v1.1 / Docker Registry v2
// HTTP API under /v2/: routing, request checks, content negotiation and the
// spec's error codes, on top of blobs and storage.
package registry

import (
	"log/slog"
	"net/http"

	"kiln/storage"
)

// Options tune the API.
type Options struct {
	// DeleteEnabled allows DELETE of manifests, tags and blobs.
	DeleteEnabled bool
	// RedirectBlobs answers blob GETs with a redirect to the storage
	// backend when it can hand out URLs (presigned S3 URLs).
	RedirectBlobs bool
	// Upstream, when set, fills proxied repositories on a miss.
	Upstream Upstream
	// Logger receives errors the client cannot see; nil means slog.Default().
	Logger *slog.Logger
}

// New returns the handler of the /v2/ API on store.
func New(store *storage.Store, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return newRouter(store, opts)
}
