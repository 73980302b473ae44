package storage

import (
	"context"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// StoredAdoption is one image adopted for automatic rebasing, as the store
// keeps it: keyed by the image's repository and tag, with content (JSON)
// that is the caller's.
type StoredAdoption struct {
	Repo, Tag string // both empty for a file the layout does not name
	Content   []byte
}

// PutAdoption writes the adoption of repo:tag, durably.
func (s *Store) PutAdoption(ctx context.Context, repo, tag string, content []byte) error {
	return s.files.write(ctx, adoptionPath(repo, tag), content)
}

// DeleteAdoption forgets the adoption of repo:tag; none is no error.
func (s *Store) DeleteAdoption(ctx context.Context, repo, tag string) error {
	err := s.deleteContent(ctx, adoptionPath(repo, tag))
	if isNotFound(err) {
		return nil
	}
	return err
}

// Adoptions returns every stored adoption.
func (s *Store) Adoptions(ctx context.Context) ([]StoredAdoption, error) {
	var out []StoredAdoption
	err := s.driver.Walk(ctx, adoptionsRoot, func(fi storagedriver.FileInfo) error {
		if fi.IsDir() {
			return nil
		}
		b, err := s.driver.GetContent(ctx, fi.Path())
		if err != nil {
			return err
		}
		repo, tag, _ := parseAdoptionPath(fi.Path())
		out = append(out, StoredAdoption{Repo: repo, Tag: tag, Content: b})
		return nil
	})
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	return out, nil
}
