package storage

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"time"
)

// fsFiles reads the filesystem store with the os package: blobs open as
// *os.File (sendfile), tags and links through the stat-checked cache.
type fsFiles struct {
	root  string
	cache *smallFileCache
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
