package native

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The finding: kiln OOM-killed in a build left 13 GB of kiln-native-*
// spool files behind. RemoveDeadSpools (what a start runs) removes the
// spools of processes that are gone, and only those.
func TestRemoveDeadSpools(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	spool := func(name string, files ...string) string {
		dir := filepath.Join(tmp, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), make([]byte, 4096), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	spool("kiln-native-dead", "spool", spoolLockName) // its lock went with its process
	old := spool("kiln-native-old", "spool")          // an older kiln's: no lock at all
	long := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	spool("kiln-native-new") // being created by another kiln
	live, release, err := newSpoolDir()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := os.WriteFile(filepath.Join(tmp, "not-kiln"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	RemoveDeadSpools(slog.New(slog.NewTextHandler(io.Discard, nil)))
	got := spools(t, tmp)
	want := []string{filepath.Base(live), "kiln-native-new"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after RemoveDeadSpools, TMPDIR has spools %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(tmp, "not-kiln")); err != nil {
		t.Errorf("RemoveDeadSpools removed what is not a spool: %v", err)
	}
}
