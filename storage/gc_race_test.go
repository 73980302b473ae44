package storage

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestGCRaces injects writes between the sweep and the re-check, where a
// racing push lands.
func TestGCRaces(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// race runs after the sweep put things in the trash.
		race         func(t *testing.T, s *Store, old, child v1.Descriptor)
		restoredB    int
		restoredM    int
		sweptM       int
		keepOld      bool
		keepChild    bool
		untaggedOnly bool
	}{
		{
			name: "manifest PUT after HEAD: touch, check, write",
			race: func(t *testing.T, s *Store, old, _ v1.Descriptor) {
				if err := s.TouchBlobLink(t.Context(), "r", old.Digest); err != nil {
					t.Fatal(err)
				}
				// The check restores it from the trash.
				if _, err := s.BlobSize(t.Context(), "r", old.Digest); err != nil {
					t.Fatal(err)
				}
				gcImage(t, s, "r", gcBlob(t, s, "r", "new config"), nil, []v1.Descriptor{old}, "new")
			},
			restoredB: 1, keepOld: true, sweptM: 1,
		},
		{
			name: "touched link only (the PUT checked before the move)",
			race: func(t *testing.T, s *Store, old, _ v1.Descriptor) {
				if err := s.TouchBlobLink(t.Context(), "r", old.Digest); err != nil {
					t.Fatal(err)
				}
			},
			restoredB: 1, keepOld: true, sweptM: 1,
		},
		{
			name: "manifest written without check (checked before the move)",
			race: func(t *testing.T, s *Store, old, _ v1.Descriptor) {
				cfg := gcBlob(t, s, "r", "new config")
				body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": MediaTypeOCIManifest,
					"config": v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cfg.Digest, Size: cfg.Size},
					"layers": []v1.Descriptor{{MediaType: v1.MediaTypeImageLayerGzip, Digest: old.Digest, Size: old.Size}}})
				p, _ := ParseManifest(MediaTypeOCIManifest, body)
				if err := s.PutManifest(t.Context(), "other", Manifest{Digest: digest.FromBytes(body), MediaType: MediaTypeOCIManifest, Content: body}, p, "x"); err != nil {
					t.Fatal(err)
				}
			},
			restoredB: 1, keepOld: true, sweptM: 1,
		},
		{
			name: "index PUT of an untagged child",
			race: func(t *testing.T, s *Store, _, child v1.Descriptor) {
				if err := s.TouchManifestLink(t.Context(), "r", child.Digest); err != nil {
					t.Fatal(err)
				}
				// The link is in the trash: write the index as if its check ran before.
				body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": MediaTypeOCIIndex, "manifests": []v1.Descriptor{child}})
				p, _ := ParseManifest(MediaTypeOCIIndex, body)
				if err := s.PutManifest(t.Context(), "r", Manifest{Digest: digest.FromBytes(body), MediaType: MediaTypeOCIIndex, Content: body}, p, "multi"); err != nil {
					t.Fatal(err)
				}
			},
			restoredM: 1, restoredB: 3, keepChild: true,
		},
		{
			name: "blob read after the re-check",
			race: func(t *testing.T, s *Store, old, _ v1.Descriptor) {
				// Stands for a reader between the re-check and the delete;
				// here before the re-check, which leaves it be (no link).
				if ok, err := s.HasBlob(t.Context(), old.Digest); err != nil || !ok {
					t.Fatal(ok, err)
				}
			},
			restoredB: 1, keepOld: true, sweptM: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gcStores(t, func(t *testing.T, s *Store) {
				old := gcBlob(t, s, "r", "old layer, unreferenced")
				child := gcImage(t, s, "r", gcBlob(t, s, "r", "child config"), nil, []v1.Descriptor{gcBlob(t, s, "r", "child layer")})
				passTime(t, s, 2*time.Minute)
				s.sweptHook = func() { tc.race(t, s, old, child) }
				r, err := s.GC(t.Context(), GCOptions{Grace: time.Minute, DeleteUntagged: true}, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Log(r)
				if r.BlobsRestored != tc.restoredB || r.ManifestsRestored != tc.restoredM || r.ManifestsSwept != tc.sweptM {
					t.Errorf("restored %d blobs, %d manifests, swept %d manifests; want %d, %d, %d",
						r.BlobsRestored, r.ManifestsRestored, r.ManifestsSwept, tc.restoredB, tc.restoredM, tc.sweptM)
				}
				if blobStored(t, s, old.Digest) != tc.keepOld {
					t.Errorf("old blob stored %v, want %v", !tc.keepOld, tc.keepOld)
				}
				if tc.keepChild {
					if err := pullable(t, s, "r", child.Digest); err != nil {
						t.Errorf("child: %v", err)
					}
				}
				if files := listTrash(t, s); len(files) > 0 {
					t.Errorf("trash not empty: %v", files)
				}
			})
		})
	}
}

func TestGCOneAtATime(t *testing.T) {
	t.Parallel()
	s := NewInMemory(Options{})
	gcBlob(t, s, "r", "x")
	started, release := make(chan struct{}), make(chan struct{})
	s.sweptHook = func() { close(started); <-release }
	done := make(chan error)
	go func() { _, err := s.GC(context.Background(), GCOptions{}, nil); done <- err }()
	<-started
	if _, err := s.GC(t.Context(), GCOptions{}, nil); !errors.Is(err, ErrGCRunning) {
		t.Errorf("second GC: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
