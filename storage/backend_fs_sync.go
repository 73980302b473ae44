package storage

import (
	"context"
	"os"
	"path/filepath"
)

// sync fsyncs the file at p, its directory and the directory above: the
// file may be the first of a directory made with it (a build's record).
func (b fsFiles) sync(_ context.Context, p string) error {
	if !validPath(p) {
		return errInvalidPath
	}
	dst := b.local(p)
	f, err := os.Open(dst)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	dir := filepath.Dir(dst)
	return syncDirs([]string{dir, filepath.Dir(dir)})
}
