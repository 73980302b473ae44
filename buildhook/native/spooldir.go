package native

import (
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// A native build spools to a kiln-native-* directory of TMPDIR that holds
// a lock file, locked for as long as the build runs. A kiln killed
// mid-build (the OOM killer) cannot remove its spool, but its lock goes
// with it: the next start removes every spool whose lock is free.

const (
	spoolDirPattern = "kiln-native-*"
	spoolLockName   = "lock"
	// spoolNewGrace keeps a spool without a lock file that is this new:
	// another kiln may be creating it.
	spoolNewGrace = time.Minute
)

// newSpoolDir creates a build's spool directory and locks it; release
// unlocks and removes it.
func newSpoolDir() (dir string, release func(), err error) {
	dir, err = os.MkdirTemp("", spoolDirPattern)
	if err != nil {
		return "", nil, err
	}
	unlock, err := lockSpool(filepath.Join(dir, spoolLockName))
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, func() {
		os.RemoveAll(dir)
		unlock()
	}, nil
}

// RemoveDeadSpools removes the spool directories in TMPDIR that no
// running build holds: those of a kiln that died mid-build.
func RemoveDeadSpools(log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), spoolDirPattern))
	for _, dir := range dirs {
		fi, err := os.Lstat(dir)
		if err != nil || !fi.IsDir() {
			continue
		}
		lock := filepath.Join(dir, spoolLockName)
		if _, err := os.Lstat(lock); err != nil {
			if time.Since(fi.ModTime()) < spoolNewGrace {
				continue
			}
		} else if !spoolUnlocked(lock) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("removing the spool of a build that did not finish", "dir", dir, "err", err)
			continue
		}
		log.Info("removed the spool of a build that did not finish", "dir", dir)
	}
}
