package storage

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// mkdirDurable creates every missing level of a path, accepts one that
// exists, and refuses a file in the way.
func TestMkdirDurable(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b", "c", "d")
	if err := mkdirDurable(deep); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(deep); err != nil || !fi.IsDir() {
		t.Fatalf("%s not a directory after mkdirDurable: %v", deep, err)
	}
	if err := mkdirDurable(deep); err != nil {
		t.Errorf("existing directory: %v", err)
	}
	if err := mkdirDurable(filepath.Join(root, "a", "b", "x", "y")); err != nil {
		t.Errorf("beside an existing one: %v", err)
	}
	file := filepath.Join(root, "a", "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, filepath.Join(file, "below"), filepath.Join(file, "below", "deeper")} {
		if err := mkdirDurable(p); !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("mkdirDurable(%s) with a file in the way: %v, want ENOTDIR", p, err)
		}
	}
}
