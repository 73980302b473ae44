package storage

import (
	"context"
	"errors"
	"path"
	"sort"
	"strings"

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
		base := path.Base(fi.Path())
		if !strings.HasPrefix(base, "_") {
			return nil
		}
		if base == "_layers" || base == "_manifests" {
			seen[strings.TrimPrefix(path.Dir(fi.Path()), reposRoot+"/")] = true
		}
		return storagedriver.ErrSkipDir
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
