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
	// CheckPush returns an error (403 DENIED) when repo is a mirror copy,
	// which pushes must not mix with.
	CheckPush(ctx context.Context, repo string) error
	// CopyDeleted is told of an operator's delete of a tag or manifest in
	// repo: a mirror copy is then an ordinary repository.
	CopyDeleted(ctx context.Context, repo string) error
	// BlobHit is told of a GET of a blob repo already holds, which the
	// registry serves itself (so the cache can count its hits).
	BlobHit(ctx context.Context, repo string)
}

// checkPush refuses a push to a mirror copy (see Upstream.CheckPush).
func (a *api) checkPush(r *http.Request, name string) error {
	if a.opts.Upstream == nil {
		return nil
	}
	return a.internal(r, a.opts.Upstream.CheckPush(r.Context(), name))
}
