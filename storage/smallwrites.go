package storage

import "io"

// pageCacheWrite is the most one write(2) of upload data carries. Linux
// (ext4, 6.x) gives a buffered write page-cache folios as large as the
// write: a 1 MiB write takes 1 MiB blocks of memory, a 64 KiB one 64 KiB
// blocks. In a VM that hands free memory back to its host (virtio-balloon
// free page reporting, blocks of 2 MiB and more) large blocks are mostly
// memory the host must fault in again, page by page, as the copy first
// touches it; smaller ones come from memory the guest freed lately. As
// soon as other files held that memory (another registry's data, still
// unflushed), 1 MiB writes made a 64 MiB push run at 80–210 MB/s
// instead of 500–700, and 64 KiB writes kept it there (128 KiB mostly,
// 256 KiB not); the disk was not the cost (the final fsync took under
// 10 ms either way). On a quiet machine smaller writes cost some system
// time: within the noise of a push, −16% in a bare write-and-hash loop.
const pageCacheWrite = 64 << 10

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
