package storage

import (
	"context"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// copyBufSize and copyBufs size the ring copyHashing streams through: the
// hashing goroutine works on one buffer while the next are read and
// written.
const (
	copyBufSize = 1 << 20
	copyBufs    = 3
)

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// appendData streams r onto the session's data while hashing it, and makes
// it durable before returning; st's size and hash state then include it.
// final marks the last write, after which the data is committed.
func (s *Store) appendData(ctx context.Context, id string, st *uploadState, r io.Reader, final bool) error {
	h, err := restoreHash(st)
	if err != nil {
		return err
	}
	var n int64
	if s.localRoot != "" {
		n, err = s.appendLocal(id, st.Size, h, r)
	} else {
		n, err = s.appendDriver(ctx, id, st.Size, h, r, final)
	}
	if err != nil {
		return err
	}
	st.Size += n
	return saveHash(st, h)
}

// appendLocal writes at offset size of the session's file. Bytes past size
// (left by a write that was never acknowledged) are cut off first, and again
// if this write fails, so the file always matches the saved state.
func (s *Store) appendLocal(id string, size int64, h hash.Hash, r io.Reader) (int64, error) {
	p := s.localPath(uploadDataPath(id))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return 0, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return 0, err
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := copyHashing(&writebackWriter{f: f, off: size}, h, r)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Truncate(size)
		return 0, err
	}
	return n, nil
}

// writebackWriter writes to f from off on, starting the disk write of
// each piece as soon as it is in the page cache (see startWriteback): the
// disk then works while the rest of the upload arrives, instead of all at
// the final fsync.
type writebackWriter struct {
	f   *os.File
	off int64
}

func (w *writebackWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if n > 0 {
		startWriteback(w.f, w.off, int64(n))
		w.off += int64(n)
	}
	return n, err
}

// appendDriver appends through the storage driver's resumable writer.
// Drivers cannot cut a file back, so the chunk is first spooled to a local
// temporary file: a body that breaks off never reaches the store.
func (s *Store) appendDriver(ctx context.Context, id string, size int64, h hash.Hash, r io.Reader, final bool) (int64, error) {
	spool, err := os.CreateTemp("", "kiln-chunk-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	hashed, err := restoreHashFrom(h)
	if err != nil {
		return 0, err
	}
	n, err := copyHashing(spool, hashed, r)
	if err != nil {
		return 0, err
	}
	if n == 0 && !final {
		// Nothing to store. On S3 a writer opened at size 0 would start a
		// second, empty multipart upload that a later append may resume
		// instead of the real one.
		return 0, nil
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	w, err := s.driver.Writer(ctx, uploadDataPath(id), size > 0)
	if err != nil {
		return 0, err
	}
	if w.Size() != size {
		w.Close()
		return 0, fmt.Errorf("upload %s: stored %d bytes, state says %d", id, w.Size(), size)
	}
	if _, err := io.Copy(w, spool); err != nil {
		w.Close()
		return 0, err
	}
	if final {
		err = w.Commit(ctx)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	copyHashState(h, hashed)
	return n, nil
}

// copyHashing copies r to w and hashes what it copies into h, returning
// the bytes copied. Hashing runs in a second goroutine, overlapped with
// reading and writing (in series, as io.MultiWriter did, SHA-256 and the
// write syscalls added up): each buffer read is handed to the hasher and
// written at the same time, and is read into again only once both are
// done. On an error h may have hashed more than was written; callers then
// discard it.
func copyHashing(w io.Writer, h hash.Hash, r io.Reader) (int64, error) {
	var ring [copyBufs]*[]byte
	free := make(chan []byte, copyBufs)
	for i := range ring {
		ring[i] = copyBuffers.Get().(*[]byte)
		free <- *ring[i]
	}
	defer func() {
		for _, b := range ring {
			copyBuffers.Put(b)
		}
	}()
	work := make(chan []byte, copyBufs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range work {
			h.Write(b)
			free <- b[:cap(b)]
		}
	}()
	var total int64
	var err error
	for {
		buf := <-free
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			work <- buf[:n]
			if _, werr := w.Write(buf[:n]); werr != nil {
				err = werr
				break
			}
			total += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	close(work)
	<-done // the hasher is finished with every buffer
	return total, err
}
