package storage

import (
	"context"
	"path"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

// ManifestLinks returns the manifests repo holds, each with when its link
// was last written (pushed, or refreshed by a re-push): retention ages
// untagged manifests by it. A repository holding none gives an empty map.
func (s *Store) ManifestLinks(ctx context.Context, repo string) (map[digest.Digest]time.Time, error) {
	out := map[digest.Digest]time.Time{}
	root := path.Join(repoPath(repo), manifestsDir)
	err := s.driver.Walk(ctx, root, func(fi storagedriver.FileInfo) error {
		if fi.IsDir() {
			return nil
		}
		rest := strings.Split(strings.TrimPrefix(fi.Path(), root+"/"), "/")
		if len(rest) != 2 || isTempName(rest[1]) {
			return nil
		}
		if d, ok := pathDigest(rest[0], rest[1]); ok {
			out[d] = fi.ModTime()
		}
		return nil
	})
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	return out, nil
}
