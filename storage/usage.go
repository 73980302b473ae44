package storage

import (
	"context"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// Usage counts the blobs the store holds and their bytes with one listing
// walk of the blob tree. Blobs in the GC trash, upload sessions and
// temporary files of interrupted writes are not counted.
func (s *Store) Usage(ctx context.Context) (blobs int, bytes int64, err error) {
	err = s.driver.Walk(ctx, blobsRoot, func(fi storagedriver.FileInfo) error {
		if _, ok := parseBlobPath(fi.Path()); ok && !fi.IsDir() {
			blobs++
			bytes += fi.Size()
		}
		return nil
	})
	if isNotFound(err) {
		return 0, 0, nil // nothing pushed yet
	}
	return blobs, bytes, err
}
