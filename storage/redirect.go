package storage

import (
	"net/http"

	"github.com/opencontainers/go-digest"
)

// BlobURL returns a URL from which the client making request r can fetch
// blob d directly (a presigned S3 URL for GET or HEAD), or "" when the
// driver cannot hand out URLs (filesystem, in-memory). The caller checks
// first that the repository may read d: the URL grants access to the bytes.
func (s *Store) BlobURL(r *http.Request, d digest.Digest) (string, error) {
	return s.files.url(r, blobPath(d))
}
