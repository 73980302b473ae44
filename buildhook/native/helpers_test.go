package native

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/registry"
	"kiln/storage"
)

// ---- helpers shared by the native builder's tests ----

// startRegistry runs a kiln registry in-process and returns its host:port.
func startRegistry(t testing.TB) string {
	t.Helper()
	h := registry.New(storage.NewInMemory(storage.Options{}), registry.Options{
		DeleteEnabled: true,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// layerFile is a test layer entry: a file (content), a directory (dir) or
// a symlink (link).
type layerFile struct {
	content string
	mode    int64
	dir     bool
	link    string
}

// layerOf makes a layer from entries, in sorted order.
func layerOf(t testing.TB, files map[string]layerFile) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := files[n]
		h := &tar.Header{Name: n, Mode: f.mode, ModTime: time.Unix(1, 0)}
		switch {
		case f.dir:
			h.Typeflag, h.Name = tar.TypeDir, n+"/"
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case f.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.content))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// baseOpts describe a python-like base image.
type baseOpts struct {
	arch    string
	version string            // PYTHON_VERSION
	extra   map[string]string // extra files in the top layer
	env     []string
	labels  map[string]string
	cmd     []string
}

// baseImage builds a base image: a root layer (usr/bin/python3, bin ->
// usr/bin, tmp 1777, etc/passwd) and a top layer, with history.
func baseImage(t testing.TB, o baseOpts) v1.Image {
	t.Helper()
	if o.arch == "" {
		o.arch = "amd64"
	}
	root := layerOf(t, map[string]layerFile{
		"bin":              {link: "usr/bin"},
		"etc":              {dir: true},
		"etc/passwd":       {content: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"},
		"etc/group":        {content: "root:x:0:\napp:x:1000:\nstaff:x:50:\n"},
		"tmp":              {dir: true, mode: 0o1777},
		"usr":              {dir: true},
		"usr/bin":          {dir: true},
		"usr/bin/python3":  {content: "python " + o.arch, mode: 0o755},
		"usr/local":        {dir: true},
		"usr/local/bin":    {dir: true},
		"usr/lib":          {dir: true},
		"usr/lib/os-arch":  {content: o.arch},
		"usr/lib/os-arch2": {content: "removed later"},
	})
	topFiles := map[string]layerFile{
		"usr/local/lib":             {dir: true},
		"usr/local/lib/python.txt":  {content: "python " + o.version},
		"usr/lib/.wh.os-arch2":      {},
		"usr/local/bin/pip":         {content: "pip", mode: 0o755},
		"usr/local/bin/python-link": {link: "/usr/bin/python3"},
	}
	for k, v := range o.extra {
		topFiles[k] = layerFile{content: v}
	}
	top := layerOf(t, topFiles)
	start := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(start,
		mutate.Addendum{Layer: root, History: v1.History{CreatedBy: "ADD rootfs.tar /", Created: v1.Time{Time: time.Unix(1000, 0).UTC()}}},
		mutate.Addendum{History: v1.History{CreatedBy: "ENV PYTHON_VERSION=" + o.version, EmptyLayer: true}},
		mutate.Addendum{Layer: top, History: v1.History{CreatedBy: "RUN install python"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.arch
	if o.arch == "arm64" {
		cf.Variant = "v8"
	}
	cf.Created = v1.Time{Time: time.Unix(2000, 0).UTC()}
	cf.Config.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "PYTHON_VERSION=" + o.version, "LANG=C.UTF-8"}, o.env...)
	cf.Config.Cmd = o.cmd
	if cf.Config.Cmd == nil {
		cf.Config.Cmd = []string{"python3"}
	}
	cf.Config.Labels = map[string]string{"maintainer": "python team"}
	for k, v := range o.labels {
		cf.Config.Labels[k] = v
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func platformOf(img v1.Image) v1.Platform {
	cf, _ := img.ConfigFile()
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
}

// indexOf makes an index of images (by their config platforms), plus an
// attestation-like manifest with platform unknown/unknown.
func indexOf(t testing.TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		p := platformOf(img)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	d, err := imgs[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	att := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	att, err = mutate.AppendLayers(att, layerOf(t, map[string]layerFile{"provenance.json": {content: "{}"}}))
	if err != nil {
		t.Fatal(err)
	}
	acf, err := att.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	acf = acf.DeepCopy()
	acf.OS, acf.Architecture = "unknown", "unknown"
	if att, err = mutate.ConfigFile(att, acf); err != nil {
		t.Fatal(err)
	}
	adds = append(adds, mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
		Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": d.String()},
	}})
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}

func push(t testing.TB, host, ref string, x any) digest.Digest {
	t.Helper()
	tag, err := name.NewTag(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var h v1.Hash
	switch x := x.(type) {
	case v1.Image:
		err = remote.Write(tag, x)
		if err == nil {
			h, err = x.Digest()
		}
	case v1.ImageIndex:
		err = remote.WriteIndex(tag, x)
		if err == nil {
			h, err = x.Digest()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(h.String())
}

func getDescriptor(t testing.TB, host, ref string) *remote.Descriptor {
	t.Helper()
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(r)
	if err != nil {
		t.Fatalf("get %s: %v", ref, err)
	}
	return d
}

func pullImage(t testing.TB, host, ref string) v1.Image {
	t.Helper()
	img, err := getDescriptor(t, host, ref).Image()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("%s is not a valid image: %v", ref, err)
	}
	return img
}

// contextDir writes a build context.
func contextDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, c := range files {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// appJob is a job of a rule app:v1 on python:3.8 in dir.
func appJob(host, dir, id string, base build.ImageRef, baseDigest digest.Digest) *build.Job {
	return &build.Job{
		ID: id,
		Rule: &build.Rule{
			Name: "app", Context: dir, Dockerfile: "Dockerfile",
			Tags:     []build.ImageRef{{Repo: "app", Tag: "v1"}, {Repo: "app", Tag: "latest"}},
			Args:     map[string]string{"REGISTRY": host},
			Builder:  "native",
			Strategy: "build",
			Bases:    []build.ImageRef{base}, FinalBase: &base,
		},
		Trigger:  build.Trigger{Ref: base, Digest: baseDigest, Reason: "push"},
		Registry: host,
		Staging:  build.ImageRef{Repo: "app", Tag: "kiln-build-" + id},
	}
}

type tarEntry struct {
	hdr     *tar.Header
	content string
}

// layerFiles reads a layer's tar.
func layerFiles(t testing.TB, l v1.Layer) map[string]tarEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]tarEntry{}
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = tarEntry{hdr: h, content: string(b)}
		names = append(names, h.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("layer entries not sorted: %v", names)
	}
	return out
}

func layersOf(t testing.TB, img v1.Image) []v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func layerDigests(t testing.TB, ls []v1.Layer) []string {
	t.Helper()
	var out []string
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.String())
	}
	return out
}

func mustBuild(t testing.TB, b build.Builder, job *build.Job) (digest.Digest, string) {
	t.Helper()
	var log bytes.Buffer
	d, err := b.Build(context.Background(), job, &log)
	if err != nil {
		t.Fatalf("build: %v\nlog:\n%s", err, log.String())
	}
	return d, log.String()
}
