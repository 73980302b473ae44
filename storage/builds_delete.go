package storage

import "context"

// DeleteBuild removes the record and log of build id; a build the store
// holds nothing of is no error.
func (s *Store) DeleteBuild(ctx context.Context, id string) error {
	if !validBuildID(id) {
		return ErrBuildUnknown
	}
	if err := s.driver.Delete(ctx, buildPath(id)); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}
