// Package registry serves the OCI Distribution v1.1 / Docker Registry v2
// HTTP API under /v2/: routing, request checks and content negotiation, on
// top of blobs and storage; the spec's error codes and name grammar are in
// distspec.
package registry

import (
	"log/slog"
	"net/http"

	"kiln/notify"
	"kiln/storage"
)

// DefaultMaxManifestSize is the spec's suggested manifest size limit.
const DefaultMaxManifestSize = 4 << 20

// Options tune the API.
type Options struct {
	// DeleteEnabled allows DELETE of manifests, tags and blobs.
	DeleteEnabled bool
	// RedirectBlobs answers blob GETs with a redirect to the storage
	// backend when it can hand out URLs (presigned S3 URLs).
	RedirectBlobs bool
	// MaxManifestSize refuses larger manifest PUTs with 413; 0 means
	// DefaultMaxManifestSize.
	MaxManifestSize int64
	// MaxBlobSize refuses larger blob uploads with 413; 0: no limit.
	MaxBlobSize int64
	// MaxConcurrentUploads caps the blob upload requests carrying a body
	// (monolithic POST, PATCH, PUT) in flight; more get 429 at once.
	// Manifest PUTs do not count: they are small and bounded by
	// MaxManifestSize. 0: no cap.
	MaxConcurrentUploads int
	// Upstream, when set, fills proxied repositories on a miss.
	Upstream Upstream
	// Pulls, when set, hears of every manifest a client reads (GET or
	// HEAD): what eviction and retention call used.
	Pulls *storage.PullLog
	// Notify, when set, gets every push and delete before it is answered.
	Notify *notify.Notifier
	// Logger receives errors the client cannot see; nil means slog.Default().
	Logger *slog.Logger
}

// New returns the handler of the /v2/ API on store.
func New(store *storage.Store, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = DefaultMaxManifestSize
	}
	return newRouter(store, opts)
}
