//go:build unix

package storage

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestSmallFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	content := make([]byte, 3000) // more than readSmallFile's first buffer
	for i := range content {
		content[i] = byte(i)
	}
	if err := writeNewFile(p, content); err != nil {
		t.Fatal(err)
	}
	if err := writeNewFile(p, content); !errors.Is(err, os.ErrExist) {
		t.Errorf("second create: %v, want an error saying it exists", err)
	}
	got, err := readSmallFile(p)
	if err != nil || string(got) != string(content) {
		t.Fatalf("read back %d bytes, %v; want %d", len(got), err, len(content))
	}
	if _, err := readSmallFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want not-exist", err)
	}
	if err := syncDir(dir); err != nil {
		t.Error(err)
	}
}

// A write that fails (a full disk) is an error naming the file, not a
// panic: the system call's -1 must not be used as a length.
func TestWriteNewFileOnFullDevice(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = writeAll(int(f.Fd()), []byte("tag content"))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write to a full device: %v, want ENOSPC", err)
	}
}
