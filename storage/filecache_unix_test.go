//go:build unix

package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSmallFileCache(t *testing.T) {
	t.Parallel()
	var c smallFileCache
	p := filepath.Join(t.TempDir(), "tag")
	write := func(content string) {
		t.Helper()
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string {
		t.Helper()
		b, err := c.read(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	write("sha256:aaaa")
	if got := read(); got != "sha256:aaaa" {
		t.Fatalf("first read %q", got)
	}
	if got := read(); got != "sha256:aaaa" {
		t.Fatalf("cached read %q", got)
	}
	// Replaced behind the cache's back (same size): a new inode.
	write("sha256:bbbb")
	if got := read(); got != "sha256:bbbb" {
		t.Fatalf("after an outside replace: %q", got)
	}
	// Rewritten in place with the same size and its times put back: only
	// the change time differs; the store's own writes also invalidate.
	fi, _ := os.Stat(p)
	if err := os.WriteFile(p, []byte("sha256:cccc"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, fi.ModTime(), fi.ModTime())
	c.invalidate()
	if got := read(); got != "sha256:cccc" {
		t.Fatalf("after an in-place rewrite and invalidate: %q", got)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := c.read(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted file: %v, want not-exist", err)
	}
}

// The store's own tag moves and deletes are seen at once.
func TestTagsThroughCache(t *testing.T) {
	t.Parallel()
	s, err := NewFilesystem(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	cfg := gcBlob(t, s, "app", "config")
	a := gcImage(t, s, "app", cfg, nil, nil, "v1")
	if d, err := s.ResolveTag(ctx, "app", "v1"); err != nil || d != a.Digest {
		t.Fatalf("v1 = %s, %v", d, err)
	}
	b := gcImage(t, s, "app", gcBlob(t, s, "app", "config b"), nil, nil, "v1")
	if d, err := s.ResolveTag(ctx, "app", "v1"); err != nil || d != b.Digest {
		t.Fatalf("moved v1 = %s, %v; want %s", d, err, b.Digest)
	}
	if err := s.DeleteTag(ctx, "app", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveTag(ctx, "app", "v1"); !errors.Is(err, ErrTagUnknown) {
		t.Fatalf("deleted v1: %v", err)
	}
	if err := s.DeleteManifest(ctx, "app", a.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetManifest(ctx, "app", a.Digest); !errors.Is(err, ErrManifestUnknown) {
		t.Fatalf("deleted manifest: %v", err)
	}
}
