package storage

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// The filesystem store's writes, done by kiln itself rather than through
// the distribution driver: its wrapper checks every path with a regular
// expression, traces and throttles each call. Small files (tags, links,
// manifests, referrers) get the same crash behaviour as the driver's
// PutContent (a temporary file beside the target, fsync, rename, fsync of
// the directory; see tempname.go), in fewer sync rounds; uploads are
// appended in place, without the driver's extra buffering.

// write is one small file, published in one round.
func (b fsFiles) write(_ context.Context, p string, content []byte) error {
	f, err := b.writePending(p, content)
	if err != nil {
		return err
	}
	if err := b.publish(f); err != nil {
		f.discard()
		return err
	}
	return nil
}

// writeInOrder first writes every file under a temporary name and fsyncs
// it, all at once: invisible until renamed, so their order does not
// matter. Then they become visible group by group. On a filesystem that
// persists renames in order (ext4, xfs: see renamesPersistInOrder) they
// are renamed in order and their directories fsynced together: 2 sync
// rounds in all. Elsewhere each group is durable (its directories
// fsynced) before the next is renamed; an empty group costs nothing.
func (b fsFiles) writeInOrder(_ context.Context, groups ...[]smallFile) error {
	n := 0
	for _, g := range groups {
		n += len(g)
	}
	// In parallel: on ext4 a create can wait a millisecond for the
	// journal, and creates and fsyncs in parallel wait together. (Creating
	// all files first and syncing them after measured slower.)
	files := make([]pendingFile, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := 0
	for _, g := range groups {
		for _, f := range g {
			i := next
			wg.Go(func() { files[i], errs[i] = b.writePending(f.path, f.content) })
			next++
		}
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		pending := make([][]pendingFile, len(groups))
		rest := files
		for j, g := range groups {
			pending[j], rest = rest[:len(g)], rest[len(g):]
		}
		err = b.publishInOrder(pending...)
	}
	if err != nil {
		for _, f := range files {
			f.discard()
		}
		return err
	}
	return nil
}

// pendingFile is content written and fsynced under a temporary name beside
// its target, not yet visible.
type pendingFile struct {
	tmp, dst string // local paths
}

// writePending durably creates the directory of p, then writes content to
// a temporary file beside it and fsyncs it.
func (b fsFiles) writePending(p string, content []byte) (pendingFile, error) {
	if !validPath(p) {
		return pendingFile{}, errInvalidPath
	}
	dst := b.local(p)
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
func (b fsFiles) publish(files ...pendingFile) error {
	defer b.cache.invalidate()
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
func (b fsFiles) publishInOrder(groups ...[]pendingFile) error {
	if !b.orderedRenames {
		for _, g := range groups {
			if len(g) == 0 {
				continue
			}
			if err := b.publish(g...); err != nil {
				return err
			}
		}
		return nil
	}
	var all []pendingFile
	for _, g := range groups {
		all = append(all, g...)
	}
	return b.publish(all...)
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

// appendAt writes at offset size of the session's file. Bytes past size
// (left by a write that was never acknowledged) are cut off first, and
// again if this write fails, so the file always matches the saved state.
// Only the final write is fsynced (see recoverUpload); every write starts
// the disk writing as the data arrives (see writeback), in small writes
// where large ones prove slow (see pageCacheWrites).
func (b fsFiles) appendAt(_ context.Context, p string, size int64, h hash.Hash, r io.Reader, final bool) (int64, error) {
	lp := b.local(p)
	if err := os.MkdirAll(filepath.Dir(lp), 0o755); err != nil {
		return 0, err
	}
	f, err := os.OpenFile(lp, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return 0, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return 0, err
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return 0, err
	}
	wb := newWriteback(f, size)
	defer wb.finish() // closes f
	n, err := copyHashing(newPageCacheWrites(writebackWriter{wb}, b.slowMemory), h, r)
	if err == nil && final {
		err = f.Sync()
	}
	if err != nil {
		f.Truncate(size)
		return 0, err
	}
	return n, nil
}

// syncsChunks: intermediate chunks are not fsynced (see recoverUpload).
func (b fsFiles) syncsChunks() bool { return false }

// replace writes content under a temporary name and renames it over p,
// without an fsync.
func (b fsFiles) replace(_ context.Context, p string, content []byte) error {
	if !validPath(p) {
		return errInvalidPath
	}
	dst := b.local(p)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := tempPath(dst)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	b.cache.invalidate()
	return nil
}

// writeback starts the disk write of a file's new bytes soon after they
// are in the page cache (see startWriteback), so that the disk works while
// the rest of an upload arrives instead of all at the final fsync. It does
// so from a goroutine of its own: under a disk backlog sync_file_range
// blocks while it submits, and must then hold up neither the receiving
// nor the hashing. Bytes written meanwhile are started together.
type writeback struct {
	f    *os.File
	mu   sync.Mutex
	end  int64 // the file is written up to here
	done bool
	wake chan struct{}
}

// newWriteback follows writes to f from offset from on; finish closes f.
func newWriteback(f *os.File, from int64) *writeback {
	w := &writeback{f: f, end: from, wake: make(chan struct{}, 1)}
	go w.run(from)
	return w
}

func (w *writeback) run(started int64) {
	for range w.wake {
		w.mu.Lock()
		end, done := w.end, w.done
		w.mu.Unlock()
		if end > started {
			startWriteback(w.f, started, end-started)
			started = end
		}
		if done {
			w.f.Close()
			return
		}
	}
}

func (w *writeback) notify() {
	select {
	case w.wake <- struct{}{}:
	default: // a wake-up is pending: it will see these bytes too
	}
}

// wrote records n more bytes written.
func (w *writeback) wrote(n int64) {
	w.mu.Lock()
	w.end += n
	w.mu.Unlock()
	w.notify()
}

// finish starts what is left and closes the file, without waiting.
func (w *writeback) finish() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	w.notify()
}

// writebackWriter writes to the file of a writeback and tells it.
type writebackWriter struct{ w *writeback }

func (ww writebackWriter) Write(p []byte) (int, error) {
	n, err := ww.w.f.Write(p)
	if n > 0 {
		ww.w.wrote(int64(n))
	}
	return n, err
}

// mkdirDurable creates dir and any missing parent, then fsyncs the parent
// of each directory it created, all at once: the filesystem's journal
// commits them together (one by one, a new repository's path cost a sync
// round per level). Existing directories cost one stat.
func mkdirDurable(dir string) error {
	var missing []string // deepest first
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return &os.PathError{Op: "mkdir", Path: d, Err: syscall.ENOTDIR}
			}
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	parents := make([]string, 0, len(missing))
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		// Also when another request created it meanwhile: it may not have
		// synced the parent yet.
		parents = append(parents, filepath.Dir(missing[i]))
	}
	return syncDirs(parents)
}
