package storage

import (
	"context"
	"hash"
	"io"
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
	n, err := s.files.appendAt(ctx, uploadDataPath(id), st.Size, h, r, final)
	if err != nil {
		return err
	}
	st.Size += n
	return saveHash(st, h)
}

// copyHashing copies r to w and hashes what it copies into h, returning
// the bytes copied. Hashing runs in a second goroutine, overlapped with
// reading and writing (in series, as io.MultiWriter did, SHA-256 and the
// write syscalls added up): each buffer read is handed to the hasher and
// written at the same time, and is read into again only once both are
// done. On an error h may have hashed more than was written; callers then
// discard it. A nil h copies without hashing (the caller hashed r's bytes).
func copyHashing(w io.Writer, h hash.Hash, r io.Reader) (int64, error) {
	if h == nil {
		return copyFull(w, r)
	}
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

// copyFull copies r to w in writes of copyBufSize (the last may be
// shorter), however short r's reads are.
func copyFull(w io.Writer, r io.Reader) (int64, error) {
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	var total int64
	for {
		n, rerr := io.ReadFull(r, *buf)
		if n > 0 {
			if _, err := w.Write((*buf)[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		switch rerr {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return total, nil
		default:
			return total, rerr
		}
	}
}
