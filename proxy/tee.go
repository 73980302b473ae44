package proxy

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// Sizes of the buffers a blob streams through: the store (whose disk may
// be busy syncing other blobs) may fall behind the upstream by storeDepth
// chunks, the client by clientDepth, before the upstream reads wait for
// them; a read fills a chunk with at least teeMinRead bytes, unless the
// body ends first.
const (
	teeChunk    = 64 << 10
	teeMinRead  = 16 << 10
	storeDepth  = 256 // 16 MiB at most
	clientDepth = 64
)

var chunkPool = sync.Pool{New: func() any { return &chunk{buf: make([]byte, teeChunk)} }}

// chunk is one upstream read, shared read-only by the client and the store
// and recycled once both are done with it.
type chunk struct {
	buf  []byte
	n    int
	refs atomic.Int32
}

func (c *chunk) release() {
	if c.refs.Add(-1) == 0 {
		chunkPool.Put(c)
	}
}

// errStoreFailed stops the upstream reads once the store gave up.
var errStoreFailed = errors.New("store failed")

// tee fans an upstream body out to the client and to the store.
type tee struct {
	src      io.Reader
	toClient chan *chunk
	toStore  chan *chunk
	// clientGone closes when the client stops taking bytes (it hung up):
	// the store still gets them all.
	clientGone chan struct{}
	// storeGone closes when the store stopped taking bytes (it failed):
	// reading on is pointless.
	storeGone chan struct{}
	err       error // why reading stopped, nil at EOF; set before the channels close
}

func newTee(src io.Reader) *tee {
	return &tee{
		src:        src,
		toClient:   make(chan *chunk, clientDepth),
		toStore:    make(chan *chunk, storeDepth),
		clientGone: make(chan struct{}),
		storeGone:  make(chan struct{}),
	}
}

// read reads src until it ends or fails, then closes both channels.
func (t *tee) read() {
	defer close(t.toClient)
	defer close(t.toStore)
	for {
		c := chunkPool.Get().(*chunk)
		n, err := io.ReadAtLeast(t.src, c.buf, teeMinRead)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF // the body ended inside this chunk
		}
		if n > 0 {
			c.n = n
			c.refs.Store(2)
			select {
			case t.toStore <- c:
			case <-t.storeGone:
				c.release()
				c.release()
				t.err = errStoreFailed
				return
			}
			select {
			case t.toClient <- c:
			case <-t.clientGone:
				c.release()
			}
		} else {
			chunkPool.Put(c)
		}
		if err != nil {
			if err != io.EOF {
				t.err = err
			}
			return
		}
	}
}

// readErr is why the upstream reads stopped (nil: the body ended); valid
// once toClient or toStore is closed and drained.
func (t *tee) readErr() error { return t.err }

// serveClient writes the chunks to w until they end or the client fails;
// it returns the bytes read upstream meanwhile and whether the client
// took them all.
func (t *tee) serveClient(w http.ResponseWriter) (n int64, ok bool) {
	ok = true
	for c := range t.toClient {
		n += int64(c.n)
		if ok {
			if _, err := w.Write(c.buf[:c.n]); err != nil {
				ok = false
				close(t.clientGone)
			}
		}
		c.release()
		if !ok {
			break
		}
	}
	if !ok {
		// The reader no longer sends to the client; release what it had
		// queued already.
		for c := range t.toClient {
			n += int64(c.n)
			c.release()
		}
	}
	return n, ok
}

// storeReader reads the chunks for the store; it fails as the upstream
// body did.
func (t *tee) storeReader() io.Reader { return &chunkReader{t: t} }

// storeDone is called when the store is done reading: on a failure, the
// upstream reads stop; queued chunks are released.
func (t *tee) storeDone(err error) {
	if err != nil {
		close(t.storeGone)
	}
	for c := range t.toStore {
		c.release()
	}
}

type chunkReader struct {
	t   *tee
	cur *chunk
	off int
}

func (r *chunkReader) Read(b []byte) (int, error) {
	if r.cur == nil {
		c, ok := <-r.t.toStore
		if !ok {
			if err := r.t.readErr(); err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		r.cur, r.off = c, 0
	}
	n := copy(b, r.cur.buf[r.off:r.cur.n])
	r.off += n
	if r.off == r.cur.n {
		r.cur.release()
		r.cur = nil
	}
	return n, nil
}
