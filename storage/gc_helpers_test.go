package storage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// gcStores runs f on a filesystem and an in-memory store, in parallel.
// The in-memory store lives in a synctest bubble, so that passTime can move
// its clock on without waiting.
func gcStores(t *testing.T, f func(t *testing.T, s *Store)) {
	t.Helper()
	t.Run("filesystem", func(t *testing.T) {
		t.Parallel()
		s, err := NewFilesystem(t.TempDir(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		f(t, s)
	})
	t.Run("inmemory", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) { f(t, NewInMemory(Options{})) })
	})
}

// passTime makes d pass for everything s holds so far, without waiting:
// the filesystem store's files get modification times d earlier; the
// in-memory store (in gcStores' bubble, where its files take their times
// from) sees its fake clock move on by d.
func passTime(t *testing.T, s *Store, d time.Duration) {
	t.Helper()
	files, ok := s.files.(fsFiles)
	if !ok {
		time.Sleep(d) // the bubble's clock: returns at once, d later
		return
	}
	err := filepath.WalkDir(files.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == files.root {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		then := fi.ModTime().Add(-d)
		return os.Chtimes(p, then, then)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func gcBlob(t *testing.T, s *Store, repo, content string) v1.Descriptor {
	t.Helper()
	d := digest.FromString(content)
	if _, err := s.PutBlob(t.Context(), repo, d, bytes.NewReader([]byte(content))); err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(content))}
}

// gcPut stores a manifest (image when config is set, else index) and
// returns its descriptor.
func gcPut(t *testing.T, s *Store, repo string, body map[string]any, tags ...string) v1.Descriptor {
	t.Helper()
	body["schemaVersion"] = 2
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	mt := MediaTypeOCIManifest
	if _, ok := body["manifests"]; ok {
		mt = MediaTypeOCIIndex
	}
	p, err := ParseManifest(mt, b)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(b)
	if err := s.PutManifest(t.Context(), repo, Manifest{Digest: d, MediaType: mt, Content: b}, p, tags...); err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
}

func gcImage(t *testing.T, s *Store, repo string, config v1.Descriptor, subject *v1.Descriptor, layers []v1.Descriptor, tags ...string) v1.Descriptor {
	t.Helper()
	config.MediaType = v1.MediaTypeImageConfig
	for i := range layers {
		layers[i].MediaType = v1.MediaTypeImageLayerGzip
	}
	body := map[string]any{"mediaType": MediaTypeOCIManifest, "config": config, "layers": layers}
	if subject != nil {
		body["subject"] = subject
	}
	return gcPut(t, s, repo, body, tags...)
}

// gcFixture is a store with every kind of reachability.
type gcFixture struct {
	tagged, untagged, index, child1, child2, sigTagged, sigUntagged v1.Descriptor
	shared, taggedOnly, untaggedOnly, untaggedConfig, sigConfig     v1.Descriptor
	sigUntaggedLayer, orphan, otherOrphan, otherImage               v1.Descriptor
}

func newGCFixture(t *testing.T, s *Store) *gcFixture {
	f := &gcFixture{}
	f.shared = gcBlob(t, s, "app", "shared layer")
	f.taggedOnly = gcBlob(t, s, "app", "tagged layer")
	f.untaggedOnly = gcBlob(t, s, "app", "untagged layer, 28 bytes...")
	cfg := gcBlob(t, s, "app", `{"config":"tagged"}`)
	f.untaggedConfig = gcBlob(t, s, "app", `{"config":"untagged"}`)
	f.tagged = gcImage(t, s, "app", cfg, nil, []v1.Descriptor{f.shared, f.taggedOnly}, "v1")
	f.untagged = gcImage(t, s, "app", f.untaggedConfig, nil, []v1.Descriptor{f.shared, f.untaggedOnly})

	c1cfg := gcBlob(t, s, "app", `{"config":"amd64"}`)
	c2cfg := gcBlob(t, s, "app", `{"config":"arm64"}`)
	f.child1 = gcImage(t, s, "app", c1cfg, nil, []v1.Descriptor{gcBlob(t, s, "app", "amd64 layer")})
	f.child2 = gcImage(t, s, "app", c2cfg, nil, []v1.Descriptor{gcBlob(t, s, "app", "arm64 layer")})
	f.index = gcPut(t, s, "app", map[string]any{"mediaType": MediaTypeOCIIndex, "manifests": []v1.Descriptor{f.child1, f.child2}}, "multi")

	sigCfg := gcBlob(t, s, "app", `{"sig":"tagged"}`)
	f.sigTagged = gcImage(t, s, "app", sigCfg, &f.tagged, []v1.Descriptor{gcBlob(t, s, "app", "signature of tagged")})
	f.sigConfig = gcBlob(t, s, "app", `{"sig":"untagged"}`)
	f.sigUntaggedLayer = gcBlob(t, s, "app", "signature of untagged")
	f.sigUntagged = gcImage(t, s, "app", f.sigConfig, &f.untagged, []v1.Descriptor{f.sigUntaggedLayer})

	f.orphan = gcBlob(t, s, "app", "orphan: uploaded, never referenced")
	f.otherOrphan = gcBlob(t, s, "other", "another orphan")
	ocfg := gcBlob(t, s, "other", `{"config":"other"}`)
	oshared := gcBlob(t, s, "other", "shared layer") // same blob as app's
	f.otherImage = gcImage(t, s, "other", ocfg, nil, []v1.Descriptor{oshared}, "latest")
	return f
}

// pullable checks that repo serves manifest d and every blob it references.
func pullable(t *testing.T, s *Store, repo string, d digest.Digest) error {
	t.Helper()
	ctx := t.Context()
	m, err := s.GetManifest(ctx, repo, d)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d, err)
	}
	p, err := ParseManifest(m.MediaType, m.Content)
	if err != nil {
		return err
	}
	for _, b := range p.Blobs {
		if _, err := s.BlobSize(ctx, repo, b.Digest); err != nil {
			return fmt.Errorf("blob %s of %s: %w", b.Digest, d, err)
		}
		rc, err := s.OpenBlob(ctx, b.Digest, 0)
		if err != nil {
			return err
		}
		got, err := b.Digest.Algorithm().FromReader(rc)
		rc.Close()
		if err != nil || got != b.Digest {
			return fmt.Errorf("blob %s reads as %s (%v)", b.Digest, got, err)
		}
	}
	for _, c := range p.Manifests {
		if err := pullable(t, s, repo, c.Digest); err != nil {
			return err
		}
	}
	return nil
}

func blobStored(t *testing.T, s *Store, d digest.Digest) bool {
	t.Helper()
	ok, err := s.exists(t.Context(), blobPath(d))
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func listTrash(t *testing.T, s *Store) []string {
	var files []string
	list, err := s.driver.List(t.Context(), trashRoot)
	if err != nil && !isNotFound(err) {
		t.Fatal(err)
	}
	for _, dir := range list {
		walkFiles(t, s, dir, &files)
	}
	return files
}

func walkFiles(t *testing.T, s *Store, p string, out *[]string) {
	fi, err := s.driver.Stat(t.Context(), p)
	if err != nil {
		return
	}
	if !fi.IsDir() {
		*out = append(*out, p)
		return
	}
	children, _ := s.driver.List(t.Context(), p)
	for _, c := range children {
		walkFiles(t, s, c, out)
	}
}
