package storage

import (
	"context"
	"errors"
	"sort"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// Repositories returns the names of every repository, in lexical order.
// A repository exists once it holds a blob link or a manifest.
func (s *Store) Repositories(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	err := s.driver.Walk(ctx, reposRoot, func(fi storagedriver.FileInfo) error {
		if !fi.IsDir() {
			return nil
		}
		repo, kind, _, ok := parseRepoPath(fi.Path())
		if !ok {
			return nil // a directory of names: go on down
		}
		if repo != "" && (kind == layersDir || kind == manifestsDir) {
			seen[repo] = true
		}
		return storagedriver.ErrSkipDir // nothing below an entry is a repository
	})
	if err != nil && !isNotFound(err) && !errors.Is(err, storagedriver.ErrSkipDir) {
		return nil, err
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}
