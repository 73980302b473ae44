package storage

import (
	"context"
	"io"
	"path"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// backend reads the store's files: the filesystem store directly (fsFiles),
// any other through its storage driver (driverFiles). Missing files are
// errors isNotFound recognises. So far it covers reads; writes still branch
// on Store.localRoot.
type backend interface {
	// stat returns the size and modification time of the file at p.
	stat(ctx context.Context, p string) (int64, time.Time, error)
	// open opens the file at p for reading from offset.
	open(ctx context.Context, p string, offset int64) (io.ReadCloser, error)
	// read returns the content of the small file at p (a tag, a link);
	// the caller must not change the slice.
	read(ctx context.Context, p string) ([]byte, error)
	// names returns the names (not paths) in directory p, in no order.
	names(ctx context.Context, p string) ([]string, error)
}

// driverFiles reads through a distribution storage driver.
type driverFiles struct{ driver storagedriver.StorageDriver }

func (b driverFiles) stat(ctx context.Context, p string) (int64, time.Time, error) {
	fi, err := b.driver.Stat(ctx, p)
	if err != nil {
		return 0, time.Time{}, err
	}
	return fi.Size(), fi.ModTime(), nil
}

func (b driverFiles) open(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	return b.driver.Reader(ctx, p, offset)
}

func (b driverFiles) read(ctx context.Context, p string) ([]byte, error) {
	return b.driver.GetContent(ctx, p)
}

func (b driverFiles) names(ctx context.Context, p string) ([]string, error) {
	entries, err := b.driver.List(ctx, p)
	for i, e := range entries {
		entries[i] = path.Base(e)
	}
	return entries, err
}
