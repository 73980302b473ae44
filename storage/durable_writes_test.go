package storage

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// What kiln acknowledges goes through the backend's durable write (on the
// filesystem: a temporary file, fsynced, renamed, its directory fsynced),
// never straight to the storage driver, which on the filesystem writes in
// place and syncs nothing: a mount answered 201, or a finished build's
// record, would not survive a power loss. A backend whose durable writes
// fail shows which path each takes.
func TestAcknowledgedWritesGoThroughTheBackend(t *testing.T) {
	t.Parallel()
	backendStores(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		img := pushImage(t, s, "app", "v1", "a", nil)
		writes := map[string]func() error{
			"LinkBlob":       func() error { return s.LinkBlob(ctx, "other", img.layer) },
			"PutBuildRecord": func() error { return s.PutBuildRecord(ctx, "b1", []byte(`{}`)) },
			"PutAdoption":    func() error { return s.PutAdoption(ctx, "app", "v1", []byte(`{}`)) },
			"FinishBuildLog": func() error { return s.FinishBuildLog(ctx, "b1", []byte("done\n")) },
		}
		healthy := s.files
		s.files = writesFail{healthy}
		for name, write := range writes {
			if err := write(); !errors.Is(err, errFault) {
				t.Errorf("%s where durable writes fail: err %v, want the backend's error", name, err)
			}
		}
		s.files = healthy
		for name, write := range writes {
			if err := write(); err != nil {
				t.Errorf("%s on a healthy backend: %v", name, err)
			}
		}
		if _, err := s.BlobSize(ctx, "other", img.layer); err != nil {
			t.Errorf("mounted blob: %v", err)
		}
	})
}

// An acknowledged delete goes through the backend's durable removal too
// (on the filesystem: the directory is fsynced), or a blob DELETE answered
// 202, or a deleted referrer, may come back after a power loss.
func TestAcknowledgedDeletesGoThroughTheBackend(t *testing.T) {
	t.Parallel()
	backendStores(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		img := pushImage(t, s, "app", "v1", "a", nil)
		sig := pushImage(t, s, "app", "sig", "b", &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: img.manifest, Size: 1})
		if err := s.PutAdoption(ctx, "app", "v1", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		deletes := map[string]struct {
			under string // the one path whose removal must fail
			del   func() error
		}{
			"UnlinkBlob":     {layerLinkPath("app", img.layer), func() error { return s.UnlinkBlob(ctx, "app", img.layer) }},
			"DeleteAdoption": {adoptionPath("app", "v1"), func() error { return s.DeleteAdoption(ctx, "app", "v1") }},
			"DeleteManifest": {referrersPath("app", img.manifest), func() error { return s.DeleteManifest(ctx, "app", sig.manifest) }},
		}
		healthy := s.files
		for name, d := range deletes {
			s.files = removalsFail{healthy, d.under}
			if err := d.del(); !errors.Is(err, errFault) {
				t.Errorf("%s where its durable removal fails: err %v, want the backend's error", name, err)
			}
		}
	})
}

// removalsFail fails the removal of anything under prefix.
type removalsFail struct {
	backend
	prefix string
}

func (b removalsFail) removeAll(ctx context.Context, p string) error {
	if strings.HasPrefix(p, b.prefix) {
		return errFault
	}
	return b.backend.removeAll(ctx, p)
}

func (b removalsFail) remove(ctx context.Context, p string) error {
	if strings.HasPrefix(p, b.prefix) {
		return errFault
	}
	return b.backend.remove(ctx, p)
}

// Mounting a blob the repository links already refreshes the link's age
// (garbage collection's grace counts from it) without writing it again.
func TestLinkBlobAgainOnlyTouches(t *testing.T) {
	t.Parallel()
	backendStores(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		img := pushImage(t, s, "app", "v1", "a", nil)
		healthy := s.files
		s.files = writesFail{healthy}
		if err := s.LinkBlob(ctx, "app", img.layer); err != nil {
			t.Errorf("linking a linked blob again wrote it: %v", err)
		}
	})
}

// writesFail fails every durable write, and making a file durable, and
// lets the rest through.
type writesFail struct{ backend }

func (writesFail) write(context.Context, string, []byte) error { return errFault }

func (writesFail) writeInOrder(context.Context, ...[]smallFile) error { return errFault }

func (writesFail) sync(context.Context, string) error { return errFault }
