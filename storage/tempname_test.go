package storage

import (
	"slices"
	"testing"

	"github.com/google/uuid"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// A tag shaped like a temporary file's name is still a tag: it is listed,
// it resolves, and GC keeps its image.
func TestTagShapedLikeTempFileIsATag(t *testing.T) {
	t.Parallel()
	gcStores(t, func(t *testing.T, s *Store) {
		tag := "rc1." + uuid.NewString() + ".tmp"
		layer := gcBlob(t, s, "app", "layer")
		config := gcBlob(t, s, "app", "config")
		img := gcImage(t, s, "app", config, nil, []v1.Descriptor{layer}, tag)

		tags, err := s.Tags(t.Context(), "app")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(tags, tag) {
			t.Fatalf("tags/list %v lacks %s", tags, tag)
		}
		if _, err := s.GC(t.Context(), GCOptions{DeleteUntagged: true}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ResolveTag(t.Context(), "app", tag); err != nil {
			t.Fatalf("tag after GC: %v", err)
		}
		if ok, err := s.HasManifest(t.Context(), "app", img.Digest); err != nil || !ok {
			t.Errorf("image after GC: %v, %v", ok, err)
		}
		for _, d := range []v1.Descriptor{layer, config} {
			if ok, err := s.HasBlob(t.Context(), d.Digest); err != nil || !ok {
				t.Errorf("%s after GC: %v, %v", d.Digest, ok, err)
			}
		}
	})
}
