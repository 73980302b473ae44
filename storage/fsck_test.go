package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// fsckImage is what pushImage stored.
type fsckImage struct {
	config, layer, manifest digest.Digest
}

// pushImage stores a one-layer image in repo, tagged tag, with an optional
// subject, as a client push would (blobs, then the manifest).
func pushImage(t *testing.T, s *Store, repo, tag, seed string, subject *v1.Descriptor) fsckImage {
	t.Helper()
	ctx := t.Context()
	put := func(content []byte) v1.Descriptor {
		d := digest.FromBytes(content)
		if _, err := s.PutBlob(ctx, repo, d, bytes.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		return v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: d, Size: int64(len(content))}
	}
	cfg := put([]byte(`{"seed":"` + seed + `"}`))
	cfg.MediaType = v1.MediaTypeImageConfig
	layer := put([]byte(strings.Repeat("layer "+seed+"\n", 100)))
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: cfg, Layers: []v1.Descriptor{layer}, Subject: subject}
	m.SchemaVersion = 2
	d := putManifestJSON(t, s, repo, tag, m)
	return fsckImage{config: cfg.Digest, layer: layer.Digest, manifest: d}
}

func putManifestJSON(t *testing.T, s *Store, repo, tag string, v any) digest.Digest {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseManifest("", body)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(body)
	var tags []string
	if tag != "" {
		tags = []string{tag}
	}
	if err := s.PutManifest(t.Context(), repo, Manifest{Digest: d, MediaType: parsed.MediaType, Content: body}, parsed, tags...); err != nil {
		t.Fatal(err)
	}
	return d
}

// fsckStore returns a filesystem store holding two repositories: "app"
// with an image (tag v1), a signature-like referrer of it, and an index
// (tag multi) over the image; "other" with an image of its own (tag v1).
func fsckStore(t *testing.T) (*Store, string, fsckImage, digest.Digest, fsckImage) {
	t.Helper()
	dir := t.TempDir()
	s, err := NewFilesystem(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	img := pushImage(t, s, "app", "v1", "a", nil)
	pushImage(t, s, "app", "", "sig", &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: img.manifest, Size: 1})
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{{MediaType: v1.MediaTypeImageManifest, Digest: img.manifest, Size: 1}}}
	idx.SchemaVersion = 2
	index := putManifestJSON(t, s, "app", "multi", idx)
	other := pushImage(t, s, "other", "v1", "o", nil)
	return s, dir, img, index, other
}

func runFsck(t *testing.T, s *Store, repair bool) *FsckReport {
	t.Helper()
	var phases []string
	r, err := s.Fsck(t.Context(), FsckOptions{Repair: repair}, func(p FsckProgress) {
		if !slices.Contains(phases, p.Phase) {
			phases = append(phases, p.Phase)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"blobs", "repositories", "uploads"}; !slices.Equal(phases, want) {
		t.Errorf("progress phases %v, want %v", phases, want)
	}
	for _, p := range r.Problems {
		t.Logf("problem: %s", p)
	}
	for _, p := range r.Leftovers {
		t.Logf("leftover: %s", p)
	}
	return r
}

// kinds returns "kind path" of each issue, sorted.
func kinds(issues []FsckIssue) []string {
	var out []string
	for _, i := range issues {
		out = append(out, i.Kind+" "+i.Path)
	}
	slices.Sort(out)
	return out
}

func wantIssues(t *testing.T, what string, got []FsckIssue, want ...string) {
	t.Helper()
	slices.Sort(want)
	if g := kinds(got); !slices.Equal(g, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, g, want)
	}
}

func TestFsckClean(t *testing.T) {
	t.Parallel()
	s, _, _, _, _ := fsckStore(t)
	r := runFsck(t, s, false)
	if len(r.Problems) != 0 || len(r.Leftovers) != 0 || r.Remaining() != 0 {
		t.Fatalf("clean store: %d problems, %d leftovers", len(r.Problems), len(r.Leftovers))
	}
	// 3 images x (config + layer + manifest) + the index.
	if r.Blobs != 10 || r.Repositories != 2 || r.LayerLinks != 6 || r.Manifests != 4 || r.Tags != 3 || r.Referrers != 1 {
		t.Errorf("counts: %+v", *r)
	}
}

func TestFsckCorruptBlob(t *testing.T) {
	t.Parallel()
	s, dir, img, index, other := fsckStore(t)
	// Flip a byte of the layer.
	p := s.localPath(blobPath(img.layer))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[10] ^= 0x20
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}

	r := runFsck(t, s, false)
	want := []string{
		FsckBlobCorrupt + " " + blobPath(img.layer),
		FsckLayerDangling + " " + layerLinkPath("app", img.layer),
		FsckManifestBlob + " " + manifestLinkPath("app", img.manifest),
		FsckManifestChild + " " + manifestLinkPath("app", index),
		FsckTagDangling + " " + tagPath("app", "v1"),
		FsckTagDangling + " " + tagPath("app", "multi"),
	}
	wantIssues(t, "problems", r.Problems, want...)
	if r.Remaining() != len(want) {
		t.Errorf("Remaining() = %d, want %d", r.Remaining(), len(want))
	}
	// Nothing was touched without Repair.
	if got, _ := os.ReadFile(p); !bytes.Equal(got, b) {
		t.Error("fsck without --repair changed the blob")
	}

	r = runFsck(t, s, true)
	if r.Remaining() != 0 {
		t.Errorf("after repair %d problems remain", r.Remaining())
	}
	for _, i := range r.Problems {
		if i.Action == "" {
			t.Errorf("not repaired: %s", i)
		}
	}
	q := filepath.Join(dir, "quarantine", "sha256", img.layer.Encoded())
	if got, err := os.ReadFile(q); err != nil || !bytes.Equal(got, b) {
		t.Errorf("quarantined blob %s: %v", q, err)
	}
	if ok, _ := s.HasBlob(t.Context(), img.layer); ok {
		t.Error("the corrupt blob is still in the store")
	}
	// The broken image and index lost their tags; their referrer is whole
	// and stays (a subject may be absent); the other repository is
	// untouched.
	tags, err := s.Tags(t.Context(), "app")
	if err != nil || len(tags) != 0 {
		t.Errorf("app tags after repair: %v %v", tags, err)
	}
	if refs, _ := s.Referrers(t.Context(), "app", img.manifest); len(refs) != 1 {
		t.Errorf("referrers after repair: %v", refs)
	}
	if d, err := s.ResolveTag(t.Context(), "other", "v1"); err != nil || d != other.manifest {
		t.Errorf("other:v1 = %s, %v", d, err)
	}

	r = runFsck(t, s, false)
	if len(r.Problems) != 0 {
		t.Errorf("second fsck: %d problems", len(r.Problems))
	}
}

func TestFsckMissingBlobAndDanglingTag(t *testing.T) {
	t.Parallel()
	s, _, img, index, _ := fsckStore(t)
	ctx := t.Context()
	// A blob a manifest needs disappears; a tag points nowhere; another
	// holds garbage.
	if err := os.Remove(s.localPath(blobPath(img.config))); err != nil {
		t.Fatal(err)
	}
	ghost := digest.FromString("ghost")
	if err := s.driver.PutContent(ctx, tagPath("other", "ghost"), []byte(ghost)); err != nil {
		t.Fatal(err)
	}
	if err := s.driver.PutContent(ctx, tagPath("other", "junk"), []byte("not a digest")); err != nil {
		t.Fatal(err)
	}

	r := runFsck(t, s, false)
	wantIssues(t, "problems", r.Problems,
		FsckLayerDangling+" "+layerLinkPath("app", img.config),
		FsckManifestBlob+" "+manifestLinkPath("app", img.manifest),
		FsckManifestChild+" "+manifestLinkPath("app", index),
		FsckTagDangling+" "+tagPath("app", "v1"),
		FsckTagDangling+" "+tagPath("app", "multi"),
		FsckTagDangling+" "+tagPath("other", "ghost"),
		FsckTagInvalid+" "+tagPath("other", "junk"),
	)

	r = runFsck(t, s, true)
	if r.Remaining() != 0 {
		t.Fatalf("after repair %d problems remain", r.Remaining())
	}
	if _, err := s.ResolveTag(ctx, "other", "ghost"); !errors.Is(err, ErrTagUnknown) {
		t.Errorf("ghost tag: %v", err)
	}
	if ok, _ := s.HasManifest(ctx, "app", img.manifest); ok {
		t.Error("the broken manifest is still linked")
	}
	if ok, _ := s.HasBlob(ctx, img.manifest); !ok {
		t.Error("repair removed the broken manifest's bytes; only its link should go")
	}
	if tags, _ := s.Tags(ctx, "other"); !slices.Equal(tags, []string{"v1"}) {
		t.Errorf("other tags: %v", tags)
	}
	if r := runFsck(t, s, false); len(r.Problems) != 0 {
		t.Errorf("second fsck: %d problems", len(r.Problems))
	}
}

func TestFsckRelinksAndRewrites(t *testing.T) {
	t.Parallel()
	s, _, img, _, _ := fsckStore(t)
	ctx := t.Context()
	// The layer's link is gone but the bytes are there; the referrer entry
	// is gone; the config's link holds garbage.
	if err := os.Remove(s.localPath(layerLinkPath("app", img.layer))); err != nil {
		t.Fatal(err)
	}
	refs, err := s.Referrers(ctx, "app", img.manifest)
	if err != nil || len(refs) != 1 {
		t.Fatalf("referrers: %v %v", refs, err)
	}
	sig := refs[0].Digest
	if err := os.Remove(s.localPath(referrerPath("app", img.manifest, sig))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.localPath(layerLinkPath("app", img.config)), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	r := runFsck(t, s, false)
	wantIssues(t, "problems", r.Problems,
		FsckManifestUnlinked+" "+manifestLinkPath("app", img.manifest),
		FsckReferrerMissing+" "+referrerPath("app", img.manifest, sig),
		FsckLinkContent+" "+layerLinkPath("app", img.config),
	)
	runFsck(t, s, true)
	if _, err := s.BlobSize(ctx, "app", img.layer); err != nil {
		t.Errorf("layer after repair: %v", err)
	}
	if refs, _ := s.Referrers(ctx, "app", img.manifest); len(refs) != 1 || refs[0].Digest != sig {
		t.Errorf("referrers after repair: %v", refs)
	}
	if r := runFsck(t, s, false); len(r.Problems) != 0 || len(r.Leftovers) != 0 {
		t.Errorf("second fsck: %d problems, %d leftovers", len(r.Problems), len(r.Leftovers))
	}
}

// TestFsckCrashLeftovers lays out what a SIGKILL can leave behind: temporary
// files of PutContent, a referrer entry whose manifest link was never
// written, a monolithic upload's data, a session whose data was already
// committed. None is visible to clients, none is a problem, and Repair
// removes them; a session with damaged state is a problem.
func TestFsckCrashLeftovers(t *testing.T) {
	t.Parallel()
	s, _, img, _, _ := fsckStore(t)
	ctx := t.Context()
	tmp := func(p string) string { return fmt.Sprintf("%s.%s.tmp", p, uuid.NewString()) }
	write := func(p string, b []byte) {
		t.Helper()
		lp := s.localPath(p)
		if err := os.MkdirAll(filepath.Dir(lp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(lp, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// kiln writes tags itself, under its own temporary names.
	tagTmp := path.Join(tagsPath("app"), ".v2."+uuid.NewString()+".tmp")
	write(tagTmp, []byte(img.manifest[:20]))
	blobTmp := tmp(blobPath(digest.FromString("half")))
	write(blobTmp, []byte("half"))
	orphan := digest.FromString("orphan manifest")
	orphanRef := referrerPath("app", img.manifest, orphan)
	desc, _ := json.Marshal(v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: orphan, Size: 3})
	write(orphanRef, desc)
	mono := uuid.NewString()
	write(uploadDataPath(mono), []byte("monolithic"))

	// A session that received bytes, then one whose FinishUpload moved
	// its data before the crash, then one with damaged state.
	live, err := s.NewUpload(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendUpload(ctx, "app", live.ID, 0, strings.NewReader("resumable")); err != nil {
		t.Fatal(err)
	}
	committed, err := s.NewUpload(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendUpload(ctx, "app", committed.ID, 0, strings.NewReader("committed")); err != nil {
		t.Fatal(err)
	}
	if err := s.moveIntoPlace(ctx, uploadDataPath(committed.ID), blobPath(digest.FromString("committed"))); err != nil {
		t.Fatal(err)
	}
	bad := uuid.NewString()
	write(uploadStatePath(bad), []byte("{not json"))

	// Clients see none of it.
	if tags, _ := s.Tags(ctx, "app"); !slices.Equal(tags, []string{"multi", "v1"}) {
		t.Errorf("tags with a leftover temp file: %v", tags)
	}
	if refs, _ := s.Referrers(ctx, "app", img.manifest); len(refs) != 1 {
		t.Errorf("referrers with an orphan entry: %v", refs)
	}
	if _, err := s.GetUpload(ctx, "app", committed.ID); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("committed session: %v, want ErrUploadUnknown", err)
	}
	if _, err := s.AppendUpload(ctx, "app", committed.ID, 9, strings.NewReader("more")); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("append to committed session: %v, want ErrUploadUnknown", err)
	}
	if u, err := s.GetUpload(ctx, "app", live.ID); err != nil || u.Size != 9 {
		t.Errorf("live session: %+v %v", u, err)
	}

	r := runFsck(t, s, false)
	wantIssues(t, "problems", r.Problems, FsckUploadCorrupt+" "+uploadStatePath(bad))
	wantIssues(t, "leftovers", r.Leftovers,
		FsckLeftoverTemp+" "+tagTmp,
		FsckLeftoverTemp+" "+blobTmp,
		FsckLeftoverReferrer+" "+orphanRef,
		FsckLeftoverUpload+" "+uploadsRoot+"/"+mono,
		FsckLeftoverCommitted+" "+uploadsRoot+"/"+committed.ID,
	)
	if r.Uploads != 4 {
		t.Errorf("uploads counted: %d", r.Uploads)
	}

	r = runFsck(t, s, true)
	if r.Remaining() != 0 {
		t.Errorf("after repair %d problems remain", r.Remaining())
	}
	r = runFsck(t, s, false)
	if len(r.Problems) != 0 || len(r.Leftovers) != 0 {
		t.Errorf("after repair: %d problems, %d leftovers", len(r.Problems), len(r.Leftovers))
	}
	// The live session survives repair and completes.
	u, err := s.FinishUpload(ctx, "app", live.ID, 9, strings.NewReader("!"), digest.FromString("resumable!"))
	if err != nil || u.Size != 10 {
		t.Fatalf("finish live session after repair: %+v %v", u, err)
	}
}

func TestFsckStrays(t *testing.T) {
	t.Parallel()
	s, dir, _, _, _ := fsckStore(t)
	for _, p := range []string{"blobs/md5/aa/x", "blobs/sha256/zz/x", "blobs/sha256/ab/nothex", "repositories/app/_junk/x", "repositories/stray-file", "uploads/not-a-uuid/data"} {
		lp := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(lp), 0o755)
		if err := os.WriteFile(lp, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := runFsck(t, s, false)
	wantIssues(t, "problems", r.Problems,
		FsckStray+" /blobs/md5",
		FsckStray+" /blobs/sha256/zz",
		FsckStray+" /blobs/sha256/ab/nothex",
		FsckStray+" /repositories/app/_junk",
		FsckStray+" /repositories/stray-file",
		FsckStray+" /uploads/not-a-uuid",
	)
	runFsck(t, s, true)
	if _, err := os.Stat(filepath.Join(dir, "quarantine", "stray", "blobs", "sha256", "ab", "nothex")); err != nil {
		t.Errorf("stray not quarantined: %v", err)
	}
	if r := runFsck(t, s, false); len(r.Problems) != 0 {
		t.Errorf("after repair: %d problems", len(r.Problems))
	}
}

func TestFsckInMemory(t *testing.T) {
	t.Parallel()
	s := NewInMemory(Options{})
	img := pushImage(t, s, "app", "v1", "a", nil)
	if err := s.driver.Delete(t.Context(), blobPath(img.layer)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Fsck(context.Background(), FsckOptions{Repair: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantIssues(t, "problems", r.Problems,
		FsckLayerDangling+" "+layerLinkPath("app", img.layer),
		FsckManifestBlob+" "+manifestLinkPath("app", img.manifest),
		FsckTagDangling+" "+tagPath("app", "v1"),
	)
	if r.Remaining() != 0 {
		t.Errorf("in memory: %d problems remain after repair", r.Remaining())
	}
}

func TestIsTempName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"latest":                              false,
		"v1.tmp":                              false,
		"latest." + uuid.NewString() + ".tmp": true,
		"sha256-abc." + uuid.NewString() + ".tmp":          true,
		"." + uuid.NewString() + ".tmp":                    true,
		".latest." + uuid.NewString() + ".tmp":             true,
		"x." + strings.ToUpper(uuid.NewString()) + ".tmpx": false,
	} {
		if got := isTempName(name); got != want {
			t.Errorf("isTempName(%q) = %v", name, got)
		}
	}
}
