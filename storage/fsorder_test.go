package storage

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Both ways of publishing a manifest (each step synced before the next, or
// all renamed in order and synced together) store the same thing and leave
// no temporary file.
func TestPutManifestPublishOrders(t *testing.T) {
	t.Parallel()
	if !renamesPersistInOrder(t.TempDir()) {
		t.Log("the test directory's filesystem does not persist renames in order; kiln would use the strict way there")
	}
	for _, ordered := range []bool{false, true} {
		s, err := NewFilesystem(t.TempDir(), Options{ManifestCacheBytes: -1})
		if err != nil {
			t.Fatal(err)
		}
		files := s.files.(fsFiles)
		files.orderedRenames = ordered
		s.files = files
		ctx := t.Context()
		cfg := gcBlob(t, s, "app", "config")
		layer := gcBlob(t, s, "app", "layer")
		img := gcImage(t, s, "app", cfg, nil, []v1.Descriptor{layer}, "v1", "latest")
		sig := gcImage(t, s, "app", gcBlob(t, s, "app", "sig config"), &img, nil, "sig")
		for _, tag := range []string{"v1", "latest"} {
			if d, err := s.ResolveTag(ctx, "app", tag); err != nil || d != img.Digest {
				t.Errorf("ordered=%v: tag %s = %s, %v; want %s", ordered, tag, d, err, img.Digest)
			}
		}
		if m, err := s.GetManifest(ctx, "app", sig.Digest); err != nil || m.Digest != sig.Digest {
			t.Errorf("ordered=%v: referrer manifest: %v", ordered, err)
		}
		refs, err := s.Referrers(ctx, "app", img.Digest)
		if err != nil || len(refs) != 1 || refs[0].Digest != sig.Digest {
			t.Errorf("ordered=%v: referrers %v, %v; want %s", ordered, refs, err, sig.Digest)
		}
		filepath.WalkDir(files.root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".tmp") {
				t.Errorf("ordered=%v: temporary file left: %s", ordered, p)
			}
			return nil
		})
	}
}
