package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Direct filesystem access for the filesystem store's small files (tags,
// links, manifests). The distribution driver's wrapper checks every path
// with a regular expression, traces and throttles each call; on a manifest
// GET that was a third of the CPU. These helpers do the same work with os
// calls, on the same paths, with the same crash behaviour as the driver's
// PutContent (a temporary file beside the target, fsync, rename, fsync of
// the directory; see tempname.go). Other drivers (S3, in-memory) keep
// going through the driver.

// validPath reports whether p is a path the distribution driver accepts
// (its PathRegexp, ^(/[A-Za-z0-9._-]+)+$), so that the direct reads refuse
// exactly what the driver refuses.
func validPath(p string) bool {
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		case c == '/':
			if p[i-1] == '/' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// errInvalidPath is what a direct read answers for a path the driver
// would refuse; callers see it as an error, as they saw the driver's.
var errInvalidPath = errors.New("storage: invalid path")

// getContent reads the small file at p (a tag or a manifest link); the
// caller must not change the slice.
func (s *Store) getContent(ctx context.Context, p string) ([]byte, error) {
	return s.files.read(ctx, p)
}

// listNames returns the names of the entries of directory p (not their
// paths, in no order).
func (s *Store) listNames(ctx context.Context, p string) ([]string, error) {
	return s.files.names(ctx, p)
}

// makeBlobBuckets creates the 256 directories blobs of one algorithm fan
// out into (blobPath), so that the first pushes to a new store do not each
// pay for a directory creation and its parent's fsync.
func makeBlobBuckets(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "ff")); err == nil {
		return nil // made at an earlier start
	}
	if err := mkdirDurable(dir); err != nil {
		return err
	}
	for i := range 256 {
		if err := os.Mkdir(filepath.Join(dir, fmt.Sprintf("%02x", i)), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return syncDir(dir)
}

// pendingFile is content written and fsynced under a temporary name beside
// its target, not yet visible.
type pendingFile struct {
	tmp, dst string // local paths
}

// writePending durably creates the directory of p, then writes content to
// a temporary file beside it and fsyncs it.
func (s *Store) writePending(p string, content []byte) (pendingFile, error) {
	if !validPath(p) {
		return pendingFile{}, errInvalidPath
	}
	dst := s.localPath(p)
	if err := mkdirDurable(filepath.Dir(dst)); err != nil {
		return pendingFile{}, err
	}
	tmp := tempPath(dst)
	if err := writeNewFile(tmp, content); err != nil {
		os.Remove(tmp)
		return pendingFile{}, err
	}
	return pendingFile{tmp: tmp, dst: dst}, nil
}

// discard removes a pending file that will not be published.
func (f pendingFile) discard() {
	if f.tmp != "" {
		os.Remove(f.tmp)
	}
}

// publish renames the pending files into place, then fsyncs each directory
// they are in once, all at the same time (the filesystem's journal commits
// them together). When it returns nil every one is durable.
func (s *Store) publish(files ...pendingFile) error {
	defer s.smallFiles.invalidate()
	dirs := make([]string, 0, len(files))
	for _, f := range files {
		if f.tmp == "" {
			continue
		}
		if err := os.Rename(f.tmp, f.dst); err != nil {
			return err
		}
		d := filepath.Dir(f.dst)
		seen := false
		for _, x := range dirs {
			seen = seen || x == d
		}
		if !seen {
			dirs = append(dirs, d)
		}
	}
	return syncDirs(dirs)
}

// publishInOrder publishes the groups of pending files so that, after a
// crash, a group is only ever visible if every group before it is: each
// group durable before the next is renamed or, where the filesystem
// persists renames in order anyway, all renamed in order and then made
// durable in one round.
func (s *Store) publishInOrder(groups ...[]pendingFile) error {
	if !s.orderedRenames {
		for _, g := range groups {
			if err := s.publish(g...); err != nil {
				return err
			}
		}
		return nil
	}
	var all []pendingFile
	for _, g := range groups {
		all = append(all, g...)
	}
	return s.publish(all...)
}

// syncDirs fsyncs directories concurrently.
func syncDirs(dirs []string) error {
	switch len(dirs) {
	case 0:
		return nil
	case 1:
		return syncDir(dirs[0])
	}
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i, d := range dirs {
		wg.Go(func() { errs[i] = syncDir(d) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
