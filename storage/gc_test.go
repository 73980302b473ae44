package storage

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestGC(t *testing.T) {
	t.Parallel()
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

func TestGCReportJSON(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
	serialS3(t)
	s := newS3Store(t, Options{})
	ctx := t.Context()
	f := newGCFixture(t, s)
	old := gcBlob(t, s, "app", "an old layer a push is about to reference")
	// Older than grace plus S3's second: the blob, and its link written after it.
	waitAged(t, s, layerLinkPath("app", old.Digest), 100*time.Millisecond+time.Second)
	young := gcBlob(t, s, "app", "a young orphan")
	s.sweptHook = func() {
		if err := s.TouchBlobLink(ctx, "app", old.Digest); err != nil {
			t.Error(err)
		}
	}
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

// waitAged returns once the file at p is older than age on the store's
// clock: S3's clock is the server's, which no test can move.
func waitAged(t *testing.T, s *Store, p string, age time.Duration) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		now, _, err := s.storeClock(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		_, mod, err := s.files.stat(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		if now.Sub(mod) > age {
			return
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
}
