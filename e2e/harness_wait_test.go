package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// waitFor polls cond until it holds, and fails the test after timeout
// with what and cond's last report. It waits on the condition itself, so
// a slow machine makes it slower, never wrong; the timeout only stops a
// broken server from hanging the suite.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last: %s)", what, timeout, last)
		}
		<-tick.C
	}
}

// ageFiles dates every file and directory under root back by d, as if d
// had passed since anything was written there: a filesystem store's
// collector measures the grace period by modification times.
func ageFiles(t *testing.T, root string, d time.Duration) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		old := fi.ModTime().Add(-d)
		return os.Chtimes(path, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}
