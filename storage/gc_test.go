package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// gcStores runs f on a filesystem and an in-memory store.
func gcStores(t *testing.T, f func(t *testing.T, s *Store)) {
	t.Helper()
	t.Run("filesystem", func(t *testing.T) {
		s, err := NewFilesystem(t.TempDir(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		f(t, s)
	})
	t.Run("inmemory", func(t *testing.T) { f(t, NewInMemory(Options{})) })
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

func TestGC(t *testing.T) {
	type want struct {
		manifests, blobs, links int
		kept, gone              func(f *gcFixture) []v1.Descriptor // manifests of "app"
		keptBlobs, goneBlobs    func(f *gcFixture) []v1.Descriptor
		young                   int
	}
	all := func(f *gcFixture) []v1.Descriptor {
		return []v1.Descriptor{f.tagged, f.untagged, f.index, f.child1, f.child2, f.sigTagged, f.sigUntagged}
	}
	orphans := func(f *gcFixture) []v1.Descriptor { return []v1.Descriptor{f.orphan, f.otherOrphan} }
	none := func(*gcFixture) []v1.Descriptor { return nil }
	cases := []struct {
		name string
		opts GCOptions
		want want
	}{
		{
			name: "untagged kept, orphans swept",
			opts: GCOptions{},
			want: want{manifests: 0, blobs: 2, links: 2, kept: all, gone: none, keptBlobs: none, goneBlobs: orphans},
		},
		{
			name: "delete untagged",
			opts: GCOptions{DeleteUntagged: true},
			// untagged and its referrer go; so do their own blobs, configs,
			// and layers nothing else references.
			want: want{
				manifests: 2, blobs: 8, links: 6,
				kept: func(f *gcFixture) []v1.Descriptor {
					return []v1.Descriptor{f.tagged, f.index, f.child1, f.child2, f.sigTagged}
				},
				gone: func(f *gcFixture) []v1.Descriptor { return []v1.Descriptor{f.untagged, f.sigUntagged} },
				keptBlobs: func(f *gcFixture) []v1.Descriptor {
					return []v1.Descriptor{f.shared}
				},
				goneBlobs: func(f *gcFixture) []v1.Descriptor {
					return []v1.Descriptor{f.orphan, f.otherOrphan, f.untaggedOnly, f.untaggedConfig, f.sigConfig, f.sigUntaggedLayer, f.untagged, f.sigUntagged}
				},
			},
		},
		{
			name: "everything within grace",
			opts: GCOptions{DeleteUntagged: true, Grace: time.Hour},
			want: want{manifests: 0, blobs: 0, links: 0, kept: all, gone: none, keptBlobs: orphans, goneBlobs: none, young: 2},
		},
	}
	for _, tc := range cases {
		for _, dry := range []bool{false, true} {
			name := tc.name
			if dry {
				name += ", dry run"
			}
			t.Run(name, func(t *testing.T) {
				gcStores(t, func(t *testing.T, s *Store) {
					ctx := t.Context()
					f := newGCFixture(t, s)
					bytesBefore := int64(0)
					for _, d := range tc.want.goneBlobs(f) {
						bytesBefore += d.Size
					}
					var phases []string
					opts := tc.opts
					opts.DryRun = dry
					r, err := s.GC(ctx, opts, func(p GCProgress) {
						if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
							phases = append(phases, p.Phase)
						}
					})
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("%s; phases %v", r, phases)
					if r.ManifestsSwept != tc.want.manifests || r.BlobsSwept != tc.want.blobs || r.BytesFreed != bytesBefore || r.LinksSwept != tc.want.links {
						t.Errorf("swept %d manifests, %d blobs, %d bytes, %d links; want %d, %d, %d, %d",
							r.ManifestsSwept, r.BlobsSwept, r.BytesFreed, r.LinksSwept, tc.want.manifests, tc.want.blobs, bytesBefore, tc.want.links)
					}
					if r.BlobsYoung != tc.want.young {
						t.Errorf("%d young blobs, want %d", r.BlobsYoung, tc.want.young)
					}
					if phases[len(phases)-1] != GCPhaseDone {
						t.Errorf("phases %v do not end with done", phases)
					}
					kept, gone := tc.want.kept(f), tc.want.gone(f)
					if dry {
						kept, gone = all(f), nil
					}
					for _, m := range kept {
						if err := pullable(t, s, "app", m.Digest); err != nil {
							t.Errorf("kept manifest: %v", err)
						}
					}
					if err := pullable(t, s, "other", f.otherImage.Digest); err != nil {
						t.Errorf("other image: %v", err)
					}
					for _, m := range gone {
						if ok, _ := s.HasManifest(ctx, "app", m.Digest); ok {
							t.Errorf("manifest %s not deleted", m.Digest)
						}
					}
					for _, b := range tc.want.keptBlobs(f) {
						if !blobStored(t, s, b.Digest) {
							t.Errorf("blob %s swept", b.Digest)
						}
					}
					for _, b := range tc.want.goneBlobs(f) {
						if blobStored(t, s, b.Digest) != dry {
							t.Errorf("blob %s stored: %v, want %v", b.Digest, !dry, dry)
						}
					}
					if !dry && tc.want.blobs > 0 {
						if _, err := s.BlobSize(ctx, "app", f.orphan.Digest); !errors.Is(err, ErrBlobUnknown) {
							t.Errorf("swept orphan: BlobSize err %v", err)
						}
						if ok, _ := s.exists(ctx, layerLinkPath("app", f.orphan.Digest)); ok {
							t.Error("link to swept orphan kept")
						}
					}
					if !dry && tc.opts.DeleteUntagged && tc.opts.Grace == 0 {
						refs, err := s.Referrers(ctx, "app", f.untagged.Digest)
						if err != nil || len(refs) != 0 {
							t.Errorf("referrers of a deleted manifest: %v %v", refs, err)
						}
						refs, err = s.Referrers(ctx, "app", f.tagged.Digest)
						if err != nil || len(refs) != 1 {
							t.Errorf("referrers of the tagged manifest: %v %v", refs, err)
						}
					}
					// The trash is empty after a real run.
					if !dry {
						if files := listTrash(t, s); len(files) > 0 {
							t.Errorf("trash not empty: %v", files)
						}
					}
					// A second collection finds nothing more.
					r2, err := s.GC(ctx, tc.opts, nil)
					if err != nil {
						t.Fatal(err)
					}
					if !dry && (r2.ManifestsSwept != 0 || r2.BlobsSwept != 0) {
						t.Errorf("second run swept again: %s", r2)
					}
				})
			})
		}
	}
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

func TestGCGraceByAge(t *testing.T) {
	gcStores(t, func(t *testing.T, s *Store) {
		old := gcBlob(t, s, "r", "old orphan")
		time.Sleep(120 * time.Millisecond)
		young := gcBlob(t, s, "r", "young orphan")
		r, err := s.GC(t.Context(), GCOptions{Grace: 60 * time.Millisecond}, nil)
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
	gcStores(t, func(t *testing.T, s *Store) {
		b := gcBlob(t, s, "r", "pushed long ago")
		time.Sleep(120 * time.Millisecond)
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
		r, err := s.GC(t.Context(), GCOptions{Grace: 60 * time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.BlobsSwept != 0 || !blobStored(t, s, b.Digest) {
			t.Errorf("swept a blob with a young link: %s", r)
		}
	})
}

func TestBlobReadRestoresFromTrash(t *testing.T) {
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

// TestGCRaces injects writes between the sweep and the re-check, where a
// racing push lands.
func TestGCRaces(t *testing.T) {
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
				time.Sleep(80 * time.Millisecond)
				gcTestHookSwept = func() { tc.race(t, s, old, child) }
				defer func() { gcTestHookSwept = nil }()
				r, err := s.GC(t.Context(), GCOptions{Grace: 40 * time.Millisecond, DeleteUntagged: true}, nil)
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

func TestGCRecoversTrash(t *testing.T) {
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

func TestGCOneAtATime(t *testing.T) {
	s := NewInMemory(Options{})
	gcBlob(t, s, "r", "x")
	started, release := make(chan struct{}), make(chan struct{})
	gcTestHookSwept = func() { close(started); <-release }
	defer func() { gcTestHookSwept = nil }()
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

func TestGCReportJSON(t *testing.T) {
	r := &GCReport{BlobsSwept: 9, BytesFreed: 1258291, ManifestsSwept: 3, ManifestsMarked: 12, BlobsMarked: 40, Duration: 35 * time.Millisecond, Grace: time.Hour}
	if got, want := r.String(), "marked 12 manifests, 40 blobs; swept 3 manifests, 9 blobs, 1.2 MiB in 35ms"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	if m["blobsSwept"] != 9.0 || m["bytesFreed"] != 1258291.0 || m["duration"] != "35ms" || m["grace"] != "1h0m0s" {
		t.Errorf("JSON %s", b)
	}
}

// TestGCOnS3 runs a collection on S3, whose modification times come from
// the server's clock in whole seconds: ages are measured against a probe
// object, with a second of slack.
func TestGCOnS3(t *testing.T) {
	s := newS3Store(t, Options{})
	ctx := t.Context()
	f := newGCFixture(t, s)
	old := gcBlob(t, s, "app", "an old layer a push is about to reference")
	time.Sleep(2100 * time.Millisecond) // older than grace plus S3's second
	young := gcBlob(t, s, "app", "a young orphan")
	gcTestHookSwept = func() {
		if err := s.TouchBlobLink(ctx, "app", old.Digest); err != nil {
			t.Error(err)
		}
	}
	defer func() { gcTestHookSwept = nil }()
	r, err := s.GC(ctx, GCOptions{Grace: 100 * time.Millisecond, DeleteUntagged: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.ManifestsSwept != 2 || r.BlobsSwept != 8 || r.BlobsRestored != 1 || r.BlobsYoung != 1 {
		t.Errorf("swept %d manifests, %d blobs; %d restored, %d young; want 2, 8, 1, 1", r.ManifestsSwept, r.BlobsSwept, r.BlobsRestored, r.BlobsYoung)
	}
	for _, m := range []v1.Descriptor{f.tagged, f.index, f.child1, f.child2, f.sigTagged} {
		if err := pullable(t, s, "app", m.Digest); err != nil {
			t.Error(err)
		}
	}
	if !blobStored(t, s, old.Digest) || !blobStored(t, s, young.Digest) || blobStored(t, s, f.orphan.Digest) {
		t.Errorf("stored: claimed %v, young %v, orphan %v", blobStored(t, s, old.Digest), blobStored(t, s, young.Digest), blobStored(t, s, f.orphan.Digest))
	}
	if files := listTrash(t, s); len(files) > 0 {
		t.Errorf("trash not empty: %v", files)
	}
}
