//go:build unix

package native

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockSpool creates and locks path; the lock lasts until unlock or until
// the process ends, however it ends.
func lockSpool(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// spoolUnlocked reports whether no process holds the lock at path.
func spoolUnlocked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
}
