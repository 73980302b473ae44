package storage

import (
	"testing"
	"time"
)

// ManifestLinks lists the repository's own manifests (not a nested
// repository's, not deleted ones) with their link times.
func TestManifestLinks(t *testing.T) {
	t.Parallel()
	fs, err := NewFilesystem(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Store{"filesystem": fs, "inmemory": NewInMemory(Options{})} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			before := time.Now().Add(-time.Second)
			a := pushImage(t, s, "team/app", "v1", "a", nil)
			b := pushImage(t, s, "team/app", "", "b", nil)
			gone := pushImage(t, s, "team/app", "v3", "gone", nil)
			nested := pushImage(t, s, "team/app/nested", "v1", "n", nil)
			if err := s.DeleteManifest(ctx, "team/app", gone.manifest); err != nil {
				t.Fatal(err)
			}
			links, err := s.ManifestLinks(ctx, "team/app")
			if err != nil {
				t.Fatal(err)
			}
			if len(links) != 2 || links[a.manifest].IsZero() || links[b.manifest].IsZero() {
				t.Fatalf("links = %v, want %s and %s (not %s, not %s)", links, a.manifest, b.manifest, gone.manifest, nested.manifest)
			}
			if links[a.manifest].Before(before) {
				t.Errorf("link time %v is before the push (%v)", links[a.manifest], before)
			}
			none, err := s.ManifestLinks(ctx, "absent")
			if err != nil || len(none) != 0 {
				t.Fatalf("absent repository: %v, %v", none, err)
			}
		})
	}
}
