package storage

import (
	"context"
)

// deleteSession removes upload session id and what it received. With
// unfinished set, the data may still be an unfinished write: on a driver
// with resumable writers (S3) that is a multipart upload, whose parts are
// invisible to Delete and would be kept (and billed) by the bucket
// forever, so it is aborted first. A session whose data was committed has
// none, and skips the extra requests.
func (s *Store) deleteSession(ctx context.Context, id string, unfinished bool) error {
	if unfinished && s.localRoot == "" {
		s.abortPendingWrite(ctx, uploadDataPath(id))
	}
	return s.driver.Delete(ctx, uploadPath(id))
}

// abortPendingWrite cancels an unfinished resumable write at p, if there is
// one, and reports whether there was. Resuming it in append mode finds it;
// when there is none the driver answers "not found" or, for an empty
// object, starts a fresh write that Cancel throws away again.
func (s *Store) abortPendingWrite(ctx context.Context, p string) bool {
	w, err := s.driver.Writer(ctx, p, true)
	if err != nil {
		return false
	}
	w.Cancel(ctx)
	w.Close()
	return true
}
