package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const refNameAnnotation = "org.opencontainers.image.ref.name"

// randomPlatformImage returns an OCI image for os/arch with two small random
// gzip layers.
func randomPlatformImage(t *testing.T, os, arch string) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i := 0; i < 2; i++ {
		l, err := random.Layer(int64(1024*(i+1)), types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = os, arch
	cf.Config.Cmd = []string{"/bin/true"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeMultiPlatformLayout writes an OCI image layout at dir holding an
// index of linux/amd64 and linux/arm64 images, tagged tag. The index is
// serialised the way containers/image serialises it (no artifactType in the
// descriptors, image-spec field order), so that skopeo 1.9 can copy it with
// --preserve-digests. It returns the index.
func writeMultiPlatformLayout(t *testing.T, dir, tag string) v1.ImageIndex {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
	}
	for _, arch := range []string{"amd64", "arm64"} {
		img := randomPlatformImage(t, "linux", arch)
		if err := p.WriteImage(img); err != nil {
			t.Fatal(err)
		}
		raw, err := img.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageManifest,
			Digest:    digest.FromBytes(raw),
			Size:      int64(len(raw)),
			Platform:  &ocispec.Platform{OS: "linux", Architecture: arch},
		})
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	h, size, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WriteBlob(h, io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendDescriptor(v1.Descriptor{
		MediaType:   types.OCIImageIndex,
		Digest:      h,
		Size:        size,
		Annotations: map[string]string{refNameAnnotation: tag},
	}); err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	sub, err := top.ImageIndex(h)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// layoutTagged finds the descriptor tagged tag in an OCI layout's index.json.
func layoutTagged(t *testing.T, dir, tag string) (layout.Path, v1.Descriptor) {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("reading OCI layout %s: %v", dir, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Annotations[refNameAnnotation] == tag {
			return p, d
		}
	}
	t.Fatalf("OCI layout %s has no manifest tagged %q: %+v", dir, tag, im.Manifests)
	return "", v1.Descriptor{}
}

// indexDigests returns every digest an index references (children, configs,
// layers), sorted.
func indexDigests(t *testing.T, idx v1.ImageIndex) []string {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range im.Manifests {
		out = append(out, "manifest "+d.Digest.String())
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, "config "+m.Config.Digest.String())
		for _, l := range m.Layers {
			out = append(out, "layer "+l.Digest.String())
		}
	}
	sort.Strings(out)
	return out
}

// verifyLayoutBlobs checks that every blob file of an OCI layout hashes to
// its name.
func verifyLayoutBlobs(t *testing.T, dir string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := sha256Digest(b), "sha256:"+filepath.Base(f); got != want {
			t.Errorf("blob %s hashes to %s", f, got)
		}
	}
	return len(files)
}

// TestSkopeo copies a multi-platform OCI layout into the registry and back
// with skopeo and checks that no digest changed.
func TestSkopeo(t *testing.T) {
	reg := needRegistry(t)
	ensureTool(t, "skopeo", "skopeo")

	src := filepath.Join(t.TempDir(), "src")
	idx := writeMultiPlatformLayout(t, src, "v1")
	idxDigest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	idxRaw, err := idx.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	want := indexDigests(t, idx)

	repo := reg.Repo("skopeo", "multi")
	dst := "docker://" + reg.Addr + "/" + repo + ":v1"
	skopeo := func(args ...string) string {
		t.Helper()
		return mustRun(t, cmdOpts{Timeout: 5 * time.Minute}, "skopeo", append([]string{"--insecure-policy"}, args...)...)
	}

	skopeo("copy", "--all", "--preserve-digests", "--dest-tls-verify=false", "oci:"+src+":v1", dst)

	// What the registry holds now.
	if got := checkManifestTree(t, reg, repo, "v1"); got != idxDigest.String() {
		t.Errorf("registry's digest for %s:v1 is %s, the layout's index is %s", repo, got, idxDigest)
	}
	raw := skopeo("inspect", "--raw", "--tls-verify=false", dst)
	if !bytes.Equal([]byte(raw), idxRaw) {
		t.Errorf("skopeo inspect --raw differs from the pushed index:\n got %s\nwant %s", raw, idxRaw)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		child, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		childRaw, err := child.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		got := skopeo("inspect", "--raw", "--tls-verify=false", "docker://"+reg.Addr+"/"+repo+"@"+d.Digest.String())
		if !bytes.Equal([]byte(got), childRaw) {
			t.Errorf("child %s (%s): skopeo inspect --raw differs:\n got %s\nwant %s", d.Digest, d.Platform, got, childRaw)
		}
	}

	// Copy back into a fresh layout and compare every digest.
	out := filepath.Join(t.TempDir(), "out")
	skopeo("copy", "--all", "--preserve-digests", "--src-tls-verify=false", dst, "oci:"+out+":v1")
	op, od := layoutTagged(t, out, "v1")
	if od.Digest != idxDigest {
		t.Errorf("index copied back has digest %s, want %s", od.Digest, idxDigest)
	}
	gotIdx, err := op.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	back, err := gotIdx.ImageIndex(od.Digest)
	if err != nil {
		t.Fatalf("index %s copied back: %v", od.Digest, err)
	}
	backRaw, err := back.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(backRaw, idxRaw) {
		t.Errorf("index copied back differs:\n got %s\nwant %s", backRaw, idxRaw)
	}
	got := indexDigests(t, back)
	if len(got) != len(want) {
		t.Errorf("copied back %d manifests+blobs, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	} else {
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("digests copied back differ:\n got %v\nwant %v", got, want)
				break
			}
		}
	}
	if n := verifyLayoutBlobs(t, out); n < len(want)+1 {
		t.Errorf("copied-back layout holds %d blobs, want at least %d", n, len(want)+1)
	}
}
