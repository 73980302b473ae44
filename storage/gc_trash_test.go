package storage

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestGCGraceByAge(t *testing.T) {
	t.Parallel()
	gcStores(t, func(t *testing.T, s *Store) {
		old := gcBlob(t, s, "r", "old orphan")
		passTime(t, s, 2*time.Minute)
		young := gcBlob(t, s, "r", "young orphan")
		r, err := s.GC(t.Context(), GCOptions{Grace: time.Minute}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.BlobsSwept != 1 || r.BlobsYoung != 1 || r.BytesFreed != old.Size {
			t.Errorf("report %s (%d young, %d bytes)", r, r.BlobsYoung, r.BytesFreed)
		}
		if blobStored(t, s, old.Digest) || !blobStored(t, s, young.Digest) {
			t.Errorf("old stored %v, young stored %v", blobStored(t, s, old.Digest), blobStored(t, s, young.Digest))
		}
	})
}

func TestGCLinkWithinGraceKeepsOldBlob(t *testing.T) {
	t.Parallel()
	gcStores(t, func(t *testing.T, s *Store) {
		b := gcBlob(t, s, "r", "pushed long ago")
		passTime(t, s, 2*time.Minute)
		// A push in flight found it (HEAD) and its manifest PUT touched the link.
		if err := s.TouchBlobLink(t.Context(), "r", b.Digest); err != nil {
			t.Fatal(err)
		}
		// Touching never creates a link.
		if err := s.TouchBlobLink(t.Context(), "elsewhere", b.Digest); err != nil {
			t.Fatal(err)
		}
		if _, err := s.BlobSize(t.Context(), "elsewhere", b.Digest); !errors.Is(err, ErrBlobUnknown) {
			t.Errorf("touch created a link: %v", err)
		}
		r, err := s.GC(t.Context(), GCOptions{Grace: time.Minute}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.BlobsSwept != 0 || !blobStored(t, s, b.Digest) {
			t.Errorf("swept a blob with a young link: %s", r)
		}
	})
}

func TestBlobReadRestoresFromTrash(t *testing.T) {
	t.Parallel()
	reads := map[string]func(s *Store, d digest.Digest) error{
		"BlobSize": func(s *Store, d digest.Digest) error {
			_, err := s.BlobSize(context.Background(), "r", d)
			return err
		},
		"HasBlob": func(s *Store, d digest.Digest) error {
			ok, err := s.HasBlob(context.Background(), d)
			if err == nil && !ok {
				err = ErrBlobUnknown
			}
			return err
		},
		"OpenBlob": func(s *Store, d digest.Digest) error {
			rc, err := s.OpenBlob(context.Background(), d, 0)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.ReadAll(rc)
			return err
		},
		"getBlob": func(s *Store, d digest.Digest) error {
			_, err := s.getBlob(context.Background(), d)
			return err
		},
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			gcStores(t, func(t *testing.T, s *Store) {
				b := gcBlob(t, s, "r", "in the trash")
				if err := s.moveIntoPlace(t.Context(), blobPath(b.Digest), trashBlobPath(b.Digest)); err != nil {
					t.Fatal(err)
				}
				if err := read(s, b.Digest); err != nil {
					t.Fatalf("read of a trashed blob: %v", err)
				}
				if !blobStored(t, s, b.Digest) {
					t.Error("not moved back")
				}
				if got := readBlob(t, s, b.Digest); string(got) != "in the trash" {
					t.Errorf("content %q", got)
				}
				// A blob in neither place is still unknown.
				if err := read(s, digest.FromString("nothing")); !errors.Is(err, ErrBlobUnknown) {
					t.Errorf("missing blob: %v", err)
				}
			})
		})
	}
}

func TestGCRecoversTrash(t *testing.T) {
	t.Parallel()
	gcStores(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		img := gcImage(t, s, "r", gcBlob(t, s, "r", "cfg"), nil, []v1.Descriptor{gcBlob(t, s, "r", "layer")}, "v1")
		m, _ := s.GetManifest(ctx, "r", img.Digest)
		p, _ := ParseManifest(m.MediaType, m.Content)
		layer := p.Blobs[1].Digest
		// A collection died with a referenced blob and a link in the trash.
		if err := s.moveIntoPlace(ctx, blobPath(layer), trashBlobPath(layer)); err != nil {
			t.Fatal(err)
		}
		link := manifestLinkPath("r", img.Digest)
		if err := s.moveIntoPlace(ctx, link, trashRepoPath(link)); err != nil {
			t.Fatal(err)
		}
		r, err := s.GC(ctx, GCOptions{DeleteUntagged: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.TrashRecovered != 2 || r.BlobsSwept != 0 || r.ManifestsSwept != 0 {
			t.Errorf("report %s, %d recovered", r, r.TrashRecovered)
		}
		if err := pullable(t, s, "r", img.Digest); err != nil {
			t.Error(err)
		}
	})
}
