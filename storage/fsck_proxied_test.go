package storage

import (
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// A mirror copy's _proxied marker is part of the layout: fsck must not
// report it, and --repair must not quarantine it.
func TestFsckKeepsProxiedMarker(t *testing.T) {
	t.Parallel()
	s, _, _, _, _ := fsckStore(t)
	ctx := t.Context()
	pushImage(t, s, "mirror/library/nginx", "latest", "m", nil)
	if err := s.MarkProxied(ctx, "mirror/library/nginx"); err != nil {
		t.Fatal(err)
	}
	if r := runFsck(t, s, false); len(r.Problems) != 0 || len(r.Leftovers) != 0 {
		t.Fatalf("healthy store with a mirror copy: %d problems, %d leftovers", len(r.Problems), len(r.Leftovers))
	}
	runFsck(t, s, true)
	proxied, exists, err := s.IsProxied(ctx, "mirror/library/nginx")
	if err != nil || !proxied || !exists {
		t.Errorf("after repair: proxied %v exists %v err %v, want the marker kept", proxied, exists, err)
	}
}

// A mirror copy holds what clients pulled: an index whose other platforms
// nobody pulled, and layers never fetched, are content the cache fetches on
// demand, not corruption. The same gaps in a pushed repository are.
func TestFsckMirrorCopyMayLackUnpulledContent(t *testing.T) {
	t.Parallel()
	for _, mirror := range []bool{true, false} {
		s, err := NewFilesystem(t.TempDir(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		repo := "library/busybox"
		if mirror {
			if err := s.MarkProxied(t.Context(), repo); err != nil {
				t.Fatal(err)
			}
		}
		config := gcBlob(t, s, repo, "config")
		neverPulled := v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromString("layer never pulled"), Size: 18}
		pulled := gcImage(t, s, repo, config, nil, []v1.Descriptor{neverPulled})
		otherPlatform := v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: digest.FromString("arm64 image"), Size: 11}
		gcPut(t, s, repo, map[string]any{"mediaType": MediaTypeOCIIndex, "manifests": []v1.Descriptor{pulled, otherPlatform}}, "1")

		r := runFsck(t, s, false)
		if mirror && len(r.Problems) != 0 {
			t.Errorf("mirror copy: %d problems, want 0: %+v", len(r.Problems), r.Problems)
		}
		if !mirror && len(r.Problems) == 0 {
			t.Errorf("pushed repository with a missing layer and child: no problem found")
		}
	}
}
