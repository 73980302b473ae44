package storage

import "time"

// NewPullLogClock is NewPullLog with a clock of the caller's, so that
// tests elsewhere can note pulls at chosen times.
func NewPullLogClock(store *Store, now func() time.Time) *PullLog {
	l := NewPullLog(store)
	l.now = now
	return l
}
