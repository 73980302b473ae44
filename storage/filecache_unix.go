//go:build unix

package storage

import (
	"io/fs"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// smallFileCache keeps the content of the filesystem store's tag and
// manifest link files, checked against one stat per read: a GET by tag then
// costs two stat calls instead of two opens, four reads and two closes.
//
// An entry is used only while the file's inode, size, modification and
// change times are the ones it was read with, so a file another process
// replaced (kiln fsck --repair, an operator) is read again. The store's own
// writes also bump a generation that invalidates every entry: a file
// replaced twice within one tick of the filesystem clock could get the
// inode number of the first back, with the same size and times.
type smallFileCache struct {
	gen     atomic.Uint64
	entries sync.Map // local path -> *cachedFile
	count   atomic.Int64
}

// maxCachedFiles bounds the cache (a tag or link entry is some 300 bytes);
// past it, it starts over.
const maxCachedFiles = 16384

type cachedFile struct {
	gen          uint64
	ino          uint64
	size         int64
	mtime, ctime unix.Timespec
	content      []byte
}

// invalidate drops every entry; fsFiles calls it after each change it
// makes to the store's files.
func (c *smallFileCache) invalidate() { c.gen.Add(1) }

// read returns the content of the file at path, from the cache when the
// file is unchanged.
func (c *smallFileCache) read(path string) ([]byte, error) {
	gen := c.gen.Load()
	var st unix.Stat_t
	if err := statRetry(path, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if v, ok := c.entries.Load(path); ok {
		e := v.(*cachedFile)
		if e.gen == gen && e.ino == uint64(st.Ino) && e.size == st.Size && e.mtime == st.Mtim && e.ctime == st.Ctim {
			return e.content, nil
		}
	}
	// Read after the stat: if the file changes in between, the entry pairs
	// the old stat with the new content, and the next read misses.
	b, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	if c.count.Add(1) > maxCachedFiles {
		c.entries.Clear()
		c.count.Store(1)
	}
	c.entries.Store(path, &cachedFile{gen: gen, ino: uint64(st.Ino), size: st.Size, mtime: st.Mtim, ctime: st.Ctim, content: b})
	return b, nil
}

func statRetry(path string, st *unix.Stat_t) error {
	for {
		if err := unix.Stat(path, st); err != unix.EINTR {
			return err
		}
	}
}
