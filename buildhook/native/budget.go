package native

import (
	"fmt"
	"sync"
)

// defaultSpoolLimit is the disk one native build may use when
// Builder.SpoolLimit is not set (buildhook.limits.spool's default).
const defaultSpoolLimit = 4 << 30

// diskBudget is the disk one native build may still write: file contents
// it spools and the layers it writes. Sizes are counted as the tar headers
// give them (apparent sizes), before anything is written, so a sparse file
// of a few bytes in a base's layer costs what it would cost unpacked.
type diskBudget struct {
	mu    sync.Mutex
	limit int64
	used  int64
}

// reserve takes n bytes for what (a path, for the message) or says why not.
func (b *diskBudget) reserve(what string, n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n < 0 || n > b.limit-b.used {
		return fmt.Errorf("%s: %d bytes, more than the build's spool limit (buildhook.limits.spool, %d bytes) has left (%d bytes)",
			what, n, b.limit, b.limit-b.used)
	}
	b.used += n
	return nil
}
