package storage

import (
	"io"
	"sync/atomic"
	"time"
)

// pageCacheWrite is the most one write(2) of upload data carries once
// large writes proved slow (see pageCacheWrites). Linux (ext4, 6.x) gives
// a buffered write page-cache folios as large as the write: a 1 MiB write
// takes 1 MiB blocks of memory, a 64 KiB one 64 KiB blocks. In a VM that
// hands free memory back to its host (virtio-balloon free page reporting,
// blocks of 2 MiB and more) large blocks are mostly memory the host must
// fault in again, page by page, as the copy first touches it; smaller
// ones come from memory the guest freed lately. As soon as other files
// held that memory (another registry's data, still unflushed), 1 MiB
// writes made a 64 MiB push run at 80–210 MB/s instead of 500–700, and
// 64 KiB writes kept it there (128 KiB mostly, 256 KiB not); the disk was
// not the cost (the final fsync took under 10 ms either way).
const pageCacheWrite = 64 << 10

// slowPageCache is the rate below which a large write shows that the
// memory it was given had to be faulted in: a copy into the page cache
// runs at GB/s otherwise.
const slowPageCache = 250e6 // bytes per second

// slowMemoryFor is how long after a slow large write the store's uploads
// start with small writes: a chunked push's every PATCH would otherwise
// pay for one slow large write again.
const slowMemoryFor = time.Minute

// slowMemory remembers until when a store's uploads write small.
type slowMemory struct{ until atomic.Int64 } // Unix nanoseconds

func (m *slowMemory) active(now time.Time) bool {
	return m != nil && now.UnixNano() < m.until.Load()
}

func (m *slowMemory) saw(now time.Time) {
	if m != nil {
		m.until.Store(now.Add(slowMemoryFor).UnixNano())
	}
}

// pageCacheWrites passes writes on to w whole while they are quick, and
// in pieces of pageCacheWrite bytes once a large one was slow, in this
// upload or in any other of the store's in the last slowMemoryFor: small
// writes cost more system time where memory is cheap (a fresh push ran
// about 10% slower with them throughout).
type pageCacheWrites struct {
	w      io.Writer
	memory *slowMemory
	now    func() time.Time // time.Now; tests replace it
	small  bool
}

func newPageCacheWrites(w io.Writer, m *slowMemory) *pageCacheWrites {
	return &pageCacheWrites{w: w, memory: m, now: time.Now}
}

func (c *pageCacheWrites) Write(p []byte) (int, error) {
	if c.small || len(p) <= pageCacheWrite {
		return smallWrites{c.w}.Write(p)
	}
	start := c.now()
	if c.memory.active(start) {
		// Another upload found large writes slow, before this one or
		// meanwhile: under a backlog each of many concurrent ones would
		// pay for its own.
		c.small = true
		return smallWrites{c.w}.Write(p)
	}
	n, err := c.w.Write(p)
	if end := c.now(); end.Sub(start).Seconds()*slowPageCache > float64(n) {
		c.small = true
		c.memory.saw(end)
	}
	return n, err
}

// smallWrites passes each Write on to w in writes of at most
// pageCacheWrite bytes.
type smallWrites struct{ w io.Writer }

func (s smallWrites) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		n, err := s.w.Write(p[:min(len(p), pageCacheWrite)])
		total += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, io.ErrShortWrite
		}
		p = p[n:]
	}
	return total, nil
}
