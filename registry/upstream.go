package registry

import (
	"context"
	"net/http"

	"github.com/opencontainers/go-digest"

	"kiln/storage"
)

// Upstream fills proxied repositories from upstream registries (package
// proxy). handled is false for a repository it does not serve.
type Upstream interface {
	// Manifest returns tag (or digest d when tag is "") of repo.
	Manifest(ctx context.Context, repo, tag string, d digest.Digest) (m *storage.Manifest, handled bool, err error)
	// ServeBlob answers a GET or HEAD of a blob repo lacks; handled false
	// means it is now in the store and the caller serves it.
	ServeBlob(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) (handled bool, err error)
	// BlobHit is told of a GET of a blob repo already holds, which the
	// registry serves itself (so the cache can count its hits).
	BlobHit(ctx context.Context, repo string)
}
