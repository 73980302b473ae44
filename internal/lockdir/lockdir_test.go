package lockdir

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestRemoveDeadSparesLiveDirectories(t *testing.T) {
	t.Parallel()
	parent := filepath.Join(t.TempDir(), "work")
	live, err := Create(parent, "kiln-*")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Release()
	dead, err := Create(parent, "kiln-*")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dead.Path, "left"), []byte("x"), 0o600)
	dead.Release() // as the process's end would

	// A directory whose maker died before locking it goes once it is old;
	// a fresh one may still be getting its lock.
	unlockedOld := filepath.Join(parent, "kiln-old")
	unlockedNew := filepath.Join(parent, "kiln-new")
	os.Mkdir(unlockedOld, 0o700)
	os.Mkdir(unlockedNew, 0o700)
	past := time.Now().Add(-2 * newGrace)
	os.Chtimes(unlockedOld, past, past)
	other := filepath.Join(parent, "other")
	os.Mkdir(other, 0o700)

	var prepared []string
	removed, err := RemoveDead(parent, "kiln-*", func(dir string) { prepared = append(prepared, dir) })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	want := []string{dead.Path, unlockedOld}
	slices.Sort(want)
	if !slices.Equal(removed, want) || !slices.Equal(slices.Sorted(slices.Values(prepared)), want) {
		t.Errorf("removed %v, prepared %v; want %v", removed, prepared, want)
	}
	for _, keep := range []string{live.Path, unlockedNew, other} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s was removed: %v", keep, err)
		}
	}
	if fi, err := os.Stat(parent); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("parent mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}
}

func TestCreateRefusesAnotherUsersOrALink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.Mkdir(target, 0o700)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(link, "kiln-*"); err == nil {
		t.Error("Create accepted a symbolic link as its parent")
	}
	if os.Geteuid() == 0 {
		owned := filepath.Join(dir, "nobody")
		os.Mkdir(owned, 0o777)
		os.Chown(owned, 65534, 65534)
		if _, err := Create(owned, "kiln-*"); err == nil {
			t.Error("Create accepted another user's directory as its parent")
		}
	}
}
