package storage

import (
	"context"
	"io"
	"net/http"
	"path"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// backend holds the store's files: the filesystem store's directly
// (fsFiles), any other through its storage driver (driverFiles). Missing
// files are errors isNotFound recognises. Small-file writes and uploads
// still branch on Store.localRoot.
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
	// readAll returns the content of the file at p, uncached (a blob).
	readAll(ctx context.Context, p string) ([]byte, error)
	// touch sets the modification time of the file at p to now, if it
	// exists; a driver does it by rewriting what content returns.
	touch(ctx context.Context, p string, content func() ([]byte, error)) error
	// remove deletes the file at p; a file a concurrent rename took away
	// is not found, never deleted.
	remove(ctx context.Context, p string) error
	// removeAll deletes p and everything under it, durably.
	removeAll(ctx context.Context, p string) error
	// move renames from to to, creating to's directory, durably.
	move(ctx context.Context, from, to string) error
	// prepareDir creates the directory p will be written in, durably (a
	// driver creates directories as it writes).
	prepareDir(p string) error
	// url returns a URL the client of r may fetch p from directly, or "".
	url(r *http.Request, p string) (string, error)
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

func (b driverFiles) readAll(ctx context.Context, p string) ([]byte, error) {
	return b.driver.GetContent(ctx, p)
}

func (b driverFiles) touch(ctx context.Context, p string, content func() ([]byte, error)) error {
	if _, err := b.driver.Stat(ctx, p); err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	c, err := content()
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	return b.driver.PutContent(ctx, p, c)
}

func (b driverFiles) remove(ctx context.Context, p string) error { return b.driver.Delete(ctx, p) }

func (b driverFiles) removeAll(ctx context.Context, p string) error { return b.driver.Delete(ctx, p) }

func (b driverFiles) move(ctx context.Context, from, to string) error {
	return b.driver.Move(ctx, from, to)
}

func (b driverFiles) prepareDir(string) error { return nil }

func (b driverFiles) url(r *http.Request, p string) (string, error) {
	return b.driver.RedirectURL(r, p)
}
