package proxy

import (
	"context"
	"errors"
	"hash"
	"io"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
)

// Sizes of the buffers a blob streams through: the store (whose disk may
// be busy syncing other blobs) may fall behind the upstream by storeDepth
// chunks, the client by clientDepth, before the upstream reads wait for
// them; a read fills a chunk with at least teeMinRead bytes, unless the
// body ends first. Chunks of 256 KiB: a relayed byte's CPU is mostly
// copying and hashing, and 64 KiB chunks cost measurably more per byte in
// reads, writes and hand-overs (BenchmarkColdPull's cold-cpu-ms), while
// a chunk still fits a core's cache between its read and its hashing.
const (
	teeChunk    = 256 << 10
	teeMinRead  = 64 << 10
	storeDepth  = (16 << 20) / teeChunk // 16 MiB at most
	clientDepth = (4 << 20) / teeChunk
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

var (
	// errStoreFailed stops the upstream reads once the store gave up.
	errStoreFailed = errors.New("store failed")
	// errTooLarge stops a body longer than limits.max_blob_size.
	errTooLarge = errors.New("upstream blob exceeds limits.max_blob_size")
	// errOrphaned stops a fetch no client waits for after its bound.
	errOrphaned = errors.New("no client waits for the upstream blob any more")
)

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
	// The upstream body is hashed once, as it is read, for the client and
	// the store alike; sum is its digest, set with err.
	h   hash.Hash
	alg digest.Algorithm
	sum digest.Digest

	maxSize int64 // the body may be this long at most; 0: any length
	// Once the client is gone and wanted says no other waits, reading
	// goes on for orphanLimit bytes at most.
	orphanLimit int64
	wanted      func() bool
}

// newTee tees src, hashed with alg.
func newTee(src io.Reader, alg digest.Algorithm, maxSize, orphanLimit int64, wanted func() bool) *tee {
	if maxSize > 0 {
		src = io.LimitReader(src, maxSize+1) // one byte more shows it is too long
	}
	return &tee{
		src:         src,
		h:           alg.Hash(),
		alg:         alg,
		toClient:    make(chan *chunk, clientDepth),
		toStore:     make(chan *chunk, storeDepth),
		clientGone:  make(chan struct{}),
		storeGone:   make(chan struct{}),
		maxSize:     maxSize,
		orphanLimit: orphanLimit,
		wanted:      wanted,
	}
}

// read reads src until it ends or fails, then closes both channels.
func (t *tee) read() {
	defer close(t.toClient)
	defer close(t.toStore)
	var total, orphaned int64
	for {
		c := chunkPool.Get().(*chunk)
		n, err := io.ReadAtLeast(t.src, c.buf, teeMinRead)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF // the body ended inside this chunk
		}
		total += int64(n)
		if t.maxSize > 0 && total > t.maxSize {
			chunkPool.Put(c)
			t.err = errTooLarge
			return
		}
		if t.orphan() {
			if orphaned += int64(n); orphaned > t.orphanLimit {
				chunkPool.Put(c)
				t.err = errOrphaned
				return
			}
		}
		if n > 0 {
			t.h.Write(c.buf[:n])
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
			} else {
				t.sum = digest.NewDigest(t.alg, t.h)
			}
			return
		}
	}
}

// orphan reports whether no client waits for the body any more.
func (t *tee) orphan() bool {
	select {
	case <-t.clientGone:
		return t.wanted == nil || !t.wanted()
	default:
		return false
	}
}

// readErr is why the upstream reads stopped (nil: the body ended); valid
// once toClient or toStore is closed and drained.
func (t *tee) readErr() error { return t.err }

// digest is the digest of the whole body ("" if it did not end); valid
// once toClient or toStore is closed and drained.
func (t *tee) digest() digest.Digest { return t.sum }

// clientOutcome is how serving a blob to its client ended.
type clientOutcome int

const (
	clientServed   clientOutcome = iota // it has the whole blob, verified
	clientLeft                          // it hung up first
	clientCut                           // the upstream failed: the end is withheld
	clientMismatch                      // the digest did not match: the end is withheld
)

// serveClient writes the chunks to w as they come, but holds the last one
// back until the body ended and its digest is want: a client
// never gets a blob whole that was not verified. It returns the bytes read
// upstream meanwhile and how the client fared; it stops at once when ctx
// (the client's request) ends.
func (t *tee) serveClient(ctx context.Context, w io.Writer, want digest.Digest) (n int64, out clientOutcome) {
	var held *chunk
	defer func() {
		if held != nil {
			held.release()
		}
	}()
	for {
		var c *chunk
		ok := true
		select {
		case c, ok = <-t.toClient:
		case <-ctx.Done():
			return n + t.leave(), clientLeft
		}
		if !ok {
			break
		}
		n += int64(c.n)
		if held != nil {
			_, err := w.Write(held.buf[:held.n])
			held.release()
			held = nil
			if err != nil {
				c.release()
				return n + t.leave(), clientLeft
			}
		}
		held = c
	}
	switch {
	case t.readErr() != nil:
		return n, clientCut
	case t.digest() != want:
		return n, clientMismatch
	}
	if held != nil {
		if _, err := w.Write(held.buf[:held.n]); err != nil {
			return n, clientLeft
		}
	}
	return n, clientServed
}

// leave tells the reader the client is gone and releases what it had
// queued for it already; it returns the bytes those held.
func (t *tee) leave() (n int64) {
	close(t.clientGone)
	for c := range t.toClient {
		n += int64(c.n)
		c.release()
	}
	return n
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
