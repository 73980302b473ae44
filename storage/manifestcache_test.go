package storage

import (
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestManifestCacheEvictsByBytes(t *testing.T) {
	t.Parallel()
	c := newManifestCache(100)
	a, b, d := digest.FromString("a"), digest.FromString("b"), digest.FromString("d")
	c.add(a, make([]byte, 20))
	c.add(b, make([]byte, 20))
	c.get(a) // a is now the most recent
	c.add(d, make([]byte, 25))
	for i := range 3 {
		c.add(digest.FromBytes([]byte{byte(i)}), make([]byte, 20))
	}
	if _, ok := c.get(b); ok {
		t.Error("least recently used entry kept")
	}
	if c.size > 100 {
		t.Errorf("size %d over the bound", c.size)
	}
	c.add(digest.FromString("big"), make([]byte, 26)) // over a quarter: not kept
	if _, ok := c.get(digest.FromString("big")); ok {
		t.Error("oversized entry kept")
	}
	if newManifestCache(-1) != nil {
		t.Error("negative size must disable the cache")
	}
	var off *manifestCache
	off.add(a, []byte("x"))
	if _, ok := off.get(a); ok {
		t.Error("disabled cache returned content")
	}
}

// TestManifestCacheAcrossInstances: two stores on one directory (two kiln
// instances on one store). What one deletes or moves, the other sees at
// once although it has the content cached: links and tags are read through.
func TestManifestCacheAcrossInstances(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := NewFilesystem(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewFilesystem(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	put := func(s *Store, note, tag string) digest.Digest {
		body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"n":"` + note + `"}}`)
		parsed, err := ParseManifest("", body)
		if err != nil {
			t.Fatal(err)
		}
		d := digest.FromBytes(body)
		if err := s.PutManifest(ctx, "r", Manifest{Digest: d, MediaType: parsed.MediaType, Content: body}, parsed, tag); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d1 := put(a, "1", "t")
	if m, err := b.GetManifest(ctx, "r", d1); err != nil || m.Digest != d1 {
		t.Fatalf("b reads d1: %v", err)
	}
	d2 := put(a, "2", "t")
	if got, err := b.ResolveTag(ctx, "r", "t"); err != nil || got != d2 {
		t.Fatalf("b resolves t to %s, %v; want %s", got, err, d2)
	}
	if err := a.DeleteManifest(ctx, "r", d1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetManifest(ctx, "r", d1); err != ErrManifestUnknown {
		t.Fatalf("b reads deleted d1: %v, want ErrManifestUnknown", err)
	}
}
