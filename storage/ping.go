package storage

import (
	"context"
	"errors"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// Ping checks that the storage backend answers (readiness).
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.driver.List(ctx, "/")
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) {
		return nil // an empty store
	}
	return err
}
