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
	if unfinished {
		s.files.abortWrite(ctx, uploadDataPath(id))
	}
	return s.driver.Delete(ctx, uploadPath(id))
}
