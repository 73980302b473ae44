package lockdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lockName is the file in each directory whose lock its owner holds.
const lockName = ".lock"

// newGrace is how long a directory without a lock file is taken for one
// being made rather than one whose maker died before locking it.
const newGrace = time.Minute

// Dir is a directory that this process made and holds locked.
type Dir struct {
	Path string
	lock *os.File
}

// Create makes a new directory in parent, named by pattern as
// os.MkdirTemp does, that only this user may enter, and locks it until
// Release or until the process ends, however it ends. parent is made
// (0700) if missing; it must belong to this user and not be a symbolic
// link, since another user able to write there could swap what we use.
func Create(parent, pattern string) (*Dir, error) {
	if err := privateParent(parent); err != nil {
		return nil, err
	}
	path, err := os.MkdirTemp(parent, pattern)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(path, lockName), os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o600)
	if err == nil {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		os.RemoveAll(path)
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return &Dir{Path: path, lock: f}, nil
}

// Release unlocks d without removing it.
func (d *Dir) Release() { d.lock.Close() }

// RemoveDead removes every directory in parent matching pattern (a
// filepath.Match pattern) whose owner no longer holds its lock, calling
// prepare on it first (to let a tool unmount or delete what it alone
// may). It returns the paths removed and the first error.
func RemoveDead(parent, pattern string, prepare func(dir string)) (removed []string, err error) {
	dirs, _ := filepath.Glob(filepath.Join(parent, pattern))
	for _, dir := range dirs {
		fi, lerr := os.Lstat(dir)
		if lerr != nil || !fi.IsDir() {
			continue
		}
		lock := filepath.Join(dir, lockName)
		if _, lerr := os.Lstat(lock); lerr != nil {
			if time.Since(fi.ModTime()) < newGrace {
				continue
			}
		} else if !unlocked(lock) {
			continue
		}
		if prepare != nil {
			prepare(dir)
		}
		if rerr := os.RemoveAll(dir); rerr != nil {
			err = errors.Join(err, rerr)
			continue
		}
		removed = append(removed, dir)
	}
	return removed, err
}

// unlocked reports whether no process holds the lock at path.
func unlocked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
}

// privateParent makes dir, or checks the one there: a directory of this
// user's that no one else may enter.
func privateParent(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is not a directory of this user's", dir)
	}
	return os.Chmod(dir, 0o700)
}
