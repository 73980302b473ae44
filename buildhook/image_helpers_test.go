package buildhook

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// ---- image and registry helpers of the rebase, provenance and inputs tests
// (the native builder's tests have their own, in buildhook/native) ----

// nbtRegistry runs a kiln registry in-process and returns its host:port.
func nbtRegistry(t testing.TB) string {
	t.Helper()
	h := registry.New(storage.NewInMemory(storage.Options{}), registry.Options{
		DeleteEnabled: true,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// nbtFile is a test layer entry: a file (content), a directory (dir) or
// a symlink (link).
type nbtFile struct {
	content string
	mode    int64
	dir     bool
	link    string
}

// nbtLayer makes a layer from entries, in sorted order.
func nbtLayer(t testing.TB, files map[string]nbtFile) v1.Layer {
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

// nbtBaseOpts describe a python-like base image.
type nbtBaseOpts struct {
	arch    string
	version string            // PYTHON_VERSION
	extra   map[string]string // extra files in the top layer
	env     []string
	labels  map[string]string
	cmd     []string
}

// nbtBase builds a base image: a root layer (usr/bin/python3, bin ->
// usr/bin, tmp 1777, etc/passwd) and a top layer, with history.
func nbtBase(t testing.TB, o nbtBaseOpts) v1.Image {
	t.Helper()
	if o.arch == "" {
		o.arch = "amd64"
	}
	root := nbtLayer(t, map[string]nbtFile{
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
	topFiles := map[string]nbtFile{
		"usr/local/lib":             {dir: true},
		"usr/local/lib/python.txt":  {content: "python " + o.version},
		"usr/lib/.wh.os-arch2":      {},
		"usr/local/bin/pip":         {content: "pip", mode: 0o755},
		"usr/local/bin/python-link": {link: "/usr/bin/python3"},
	}
	for k, v := range o.extra {
		topFiles[k] = nbtFile{content: v}
	}
	top := nbtLayer(t, topFiles)
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

func nbtPlatform(img v1.Image) v1.Platform {
	cf, _ := img.ConfigFile()
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
}

// nbtIndex makes an index of images (by their config platforms), plus an
// attestation-like manifest with platform unknown/unknown.
func nbtIndex(t testing.TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		p := nbtPlatform(img)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	d, err := imgs[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	att := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	att, err = mutate.AppendLayers(att, nbtLayer(t, map[string]nbtFile{"provenance.json": {content: "{}"}}))
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
		Annotations: map[string]string{provRefType: "attestation-manifest", provRefDigest: d.String()},
	}})
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}

func nbtPush(t testing.TB, host, ref string, x any) digest.Digest {
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

func nbtGet(t testing.TB, host, ref string) *remote.Descriptor {
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

func nbtImage(t testing.TB, host, ref string) v1.Image {
	t.Helper()
	img, err := nbtGet(t, host, ref).Image()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("%s is not a valid image: %v", ref, err)
	}
	return img
}

// nbtContext writes a build context.
func nbtContext(t testing.TB, files map[string]string) string {
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

// nbtJob is a job of a rule app:v1 on python:3.8 in dir.
func nbtJob(host, dir, id string, base build.ImageRef, baseDigest digest.Digest) *build.Job {
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

func nbtLayers(t testing.TB, img v1.Image) []v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func nbtDigests(t testing.TB, ls []v1.Layer) []string {
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

func nbtBuild(t testing.TB, b build.Builder, job *build.Job) (digest.Digest, string) {
	t.Helper()
	var log bytes.Buffer
	d, err := b.Build(context.Background(), job, &log)
	if err != nil {
		t.Fatalf("build: %v\nlog:\n%s", err, log.String())
	}
	return d, log.String()
}

// nbtBenchBase is a base with three layers, ~2000 files, ~8 MB.
func nbtBenchBase(b testing.TB, seed int64) v1.Image {
	rng := rand.New(rand.NewSource(seed))
	img := nbtBase(b, nbtBaseOpts{version: fmt.Sprintf("3.8.%d", seed)})
	var layers []v1.Layer
	for l := range 3 {
		files := map[string]nbtFile{}
		for i := range 700 {
			buf := make([]byte, 4096)
			rng.Read(buf)
			files[fmt.Sprintf("usr/lib/python3.8/l%d/d%d/f%d.py", l, i%20, i)] = nbtFile{content: string(buf)}
		}
		layers = append(layers, nbtLayer(b, files))
	}
	out, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		b.Fatal(err)
	}
	return out
}
