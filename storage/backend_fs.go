package storage

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// fsFiles keeps the filesystem store's files with the os package: blobs
// open as *os.File (sendfile), tags and links read through the
// stat-checked cache, small files written by kiln itself (see
// backend_fs_write.go) and uploads appended in place.
type fsFiles struct {
	root string
	// cache holds tags and links read; every change of a file through
	// fsFiles invalidates it (see smallFileCache).
	cache *smallFileCache
	// driver deletes directory trees (its Delete is recursive).
	driver storagedriver.StorageDriver
	// orderedRenames: the filesystem under root persists renames in the
	// order they were made (see renamesPersistInOrder).
	orderedRenames bool
	// slowMemory: uploads write small for a while after a large write
	// was slow (see pageCacheWrites).
	slowMemory *slowMemory
}

func (b fsFiles) local(p string) string { return filepath.Join(b.root, filepath.FromSlash(p)) }

func (b fsFiles) stat(_ context.Context, p string) (int64, time.Time, error) {
	fi, err := os.Stat(b.local(p))
	if err != nil {
		return 0, time.Time{}, err
	}
	return fi.Size(), fi.ModTime(), nil
}

func (b fsFiles) open(_ context.Context, p string, offset int64) (io.ReadCloser, error) {
	f, err := os.Open(b.local(p))
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

func (b fsFiles) read(_ context.Context, p string) ([]byte, error) {
	if !validPath(p) {
		return nil, errInvalidPath
	}
	return b.cache.read(b.local(p))
}

func (b fsFiles) names(_ context.Context, p string) ([]string, error) {
	if !validPath(p) {
		return nil, errInvalidPath
	}
	f, err := os.Open(b.local(p))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func (b fsFiles) readAll(_ context.Context, p string) ([]byte, error) {
	return readSmallFile(b.local(p))
}

func (b fsFiles) touch(_ context.Context, p string, _ func() ([]byte, error)) error {
	now := time.Now()
	err := os.Chtimes(b.local(p), now, now)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// remove is one unlink: unlike the driver's Delete (a stat, then a
// remove), it cannot report a file a concurrent rename took away as
// deleted.
func (b fsFiles) remove(_ context.Context, p string) error {
	defer b.cache.invalidate()
	return os.Remove(b.local(p))
}

// removeAll fsyncs the directory that held p, so an acknowledged delete
// survives a power loss.
func (b fsFiles) removeAll(ctx context.Context, p string) error {
	defer b.cache.invalidate()
	if err := b.driver.Delete(ctx, p); err != nil {
		return err
	}
	return syncDir(filepath.Dir(b.local(p)))
}

func (b fsFiles) move(_ context.Context, from, to string) error {
	defer b.cache.invalidate()
	dst := b.local(to)
	if err := mkdirDurable(filepath.Dir(dst)); err != nil {
		return err
	}
	if err := os.Rename(b.local(from), dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// moveOut also fsyncs from's directory: the file must not come back there
// after a crash.
func (b fsFiles) moveOut(ctx context.Context, from, to string) error {
	if err := b.move(ctx, from, to); err != nil {
		return err
	}
	return syncDir(filepath.Dir(b.local(from)))
}

func (b fsFiles) url(*http.Request, string) (string, error) { return "", nil }

// shortOf: a crash between FinishUpload moving the data into the blob
// store and removing the session leaves a session whose data is gone.
func (b fsFiles) shortOf(ctx context.Context, p string, size int64) bool {
	n, _, err := b.stat(ctx, p)
	return err != nil || n < size
}

// abortWrite: an unfinished write is the file itself, nothing to cancel.
func (b fsFiles) abortWrite(context.Context, string) bool { return false }

// clock: the files carry this machine's clock.
func (b fsFiles) clock(context.Context) (time.Time, time.Duration, error) {
	return time.Now(), 0, nil
}
