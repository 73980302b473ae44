package storage

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing f's bytes [off, off+n)
// to disk now, without waiting (sync_file_range SYNC_FILE_RANGE_WRITE), so
// that the fsync closing an upload finds most of them already written. It
// gives no durability by itself; errors are ignored (the fsync reports).
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
