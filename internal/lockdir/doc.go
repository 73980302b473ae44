// Package lockdir makes private working directories that say, by a lock
// their owner holds, whether that owner still runs: what a dead process
// left can be found and removed without touching a live one's.
package lockdir
