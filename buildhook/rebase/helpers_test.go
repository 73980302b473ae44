package rebase

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand"
	"net/http/httptest"
	"slices"
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

// testRegistry runs a kiln registry in-process and returns its host:port.
func testRegistry(t testing.TB) string {
	t.Helper()
	h := registry.New(storage.NewInMemory(storage.Options{}), registry.Options{
		DeleteEnabled: true,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// layer makes a layer of regular files, in sorted order.
func layer(t testing.TB, files map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range slices.Sorted(maps.Keys(files)) {
		h := &tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: time.Unix(1, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
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

// baseImage is a base of two layers with history: a root layer and a top
// layer, an ENV between them.
func baseImage(t testing.TB, o baseOpts) v1.Image {
	t.Helper()
	if o.arch == "" {
		o.arch = "amd64"
	}
	root := layer(t, map[string]string{"usr/bin/python3": "python " + o.arch, "etc/passwd": "root:x:0:0::/root:/bin/sh\n"})
	topFiles := map[string]string{"usr/local/lib/python.txt": "python " + o.version}
	maps.Copy(topFiles, o.extra)
	start := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(start,
		mutate.Addendum{Layer: root, History: v1.History{CreatedBy: "ADD rootfs.tar /", Created: v1.Time{Time: time.Unix(1000, 0).UTC()}}},
		mutate.Addendum{History: v1.History{CreatedBy: "ENV PYTHON_VERSION=" + o.version, EmptyLayer: true}},
		mutate.Addendum{Layer: layer(t, topFiles), History: v1.History{CreatedBy: "RUN install python"}},
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
	maps.Copy(cf.Config.Labels, o.labels)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// patchedBase is the python:3.8 a security fix moves to: other files, an added
// ENV, a changed label and CMD.
func patchedBase(t testing.TB, arch string) v1.Image {
	return baseImage(t, baseOpts{
		arch: arch, version: "3.8.2",
		extra:  map[string]string{"usr/local/lib/security-fix": "patched"},
		env:    []string{"NEW_VAR=1"},
		labels: map[string]string{"maintainer": "new python team", "org.example.app": "base's"},
		cmd:    []string{"python3", "-q"},
	})
}

func platformOf(t testing.TB, img v1.Image) v1.Platform {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
}

// index makes an index of images (by their config platforms), plus an
// attestation-like manifest with platform unknown/unknown, as buildx
// pushes them.
func index(t testing.TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		p := platformOf(t, img)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	d, err := imgs[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	att := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if att, err = mutate.AppendLayers(att, layer(t, map[string]string{"provenance.json": "{}"})); err != nil {
		t.Fatal(err)
	}
	adds = append(adds, mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
		Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": d.String()},
	}})
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}

// appOn is what building this Dockerfile on base would give:
//
//	FROM python:3.8
//	ENV APP_HOME=/app PYTHONUNBUFFERED=1
//	LABEL org.example.app=demo
//	WORKDIR /app
//	COPY app.py /app/
//	USER 1000
//	ENTRYPOINT ["python3", "/app/app.py"]
//
// two layers and four empty history entries of its own on base's.
func appOn(t testing.TB, base v1.Image) v1.Image {
	t.Helper()
	img, err := mutate.Append(base,
		mutate.Addendum{History: v1.History{CreatedBy: "ENV APP_HOME=/app PYTHONUNBUFFERED=1", EmptyLayer: true}},
		mutate.Addendum{History: v1.History{CreatedBy: "LABEL org.example.app=demo", EmptyLayer: true}},
		mutate.Addendum{Layer: layer(t, map[string]string{"app/.keep": ""}), History: v1.History{CreatedBy: "WORKDIR /app"}},
		mutate.Addendum{Layer: layer(t, map[string]string{"app/app.py": "print('app')\n"}), History: v1.History{CreatedBy: "COPY app.py /app/"}},
		mutate.Addendum{History: v1.History{CreatedBy: "USER 1000", EmptyLayer: true}},
		mutate.Addendum{History: v1.History{CreatedBy: `ENTRYPOINT ["python3", "/app/app.py"]`, EmptyLayer: true}},
	)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: time.Unix(3000, 0).UTC()}
	c := &cf.Config
	c.Env = append(c.Env, "APP_HOME=/app", "PYTHONUNBUFFERED=1")
	c.Labels = maps.Clone(c.Labels)
	c.Labels["org.example.app"] = "demo"
	c.WorkingDir, c.User = "/app", "1000"
	c.Entrypoint, c.Cmd = []string{"python3", "/app/app.py"}, nil // ENTRYPOINT resets CMD
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// pushDerived builds app:v1 on the python:3.8 at host (digest bd) and
// annotates it as kiln's provenance step does: base name and digest on the
// image or index, and each index child's own base digest.
func pushDerived(t testing.TB, host string, bd digest.Digest) (*build.Job, digest.Digest) {
	t.Helper()
	baseName := host + "/python:3.8"
	annotate := func(ann map[string]string, d string) map[string]string {
		ann = maps.Clone(ann)
		if ann == nil {
			ann = map[string]string{}
		}
		ann[build.AnnotationBaseName], ann[build.AnnotationBaseDigest] = baseName, d
		return ann
	}
	desc := get(t, host, "python@"+bd.String())
	var app any
	if !desc.MediaType.IsIndex() {
		base, err := desc.Image()
		if err != nil {
			t.Fatal(err)
		}
		app = mutate.Annotations(appOn(t, base), annotate(nil, bd.String()))
	} else {
		idx, err := desc.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		var adds []mutate.IndexAddendum
		for _, m := range im.Manifests {
			if m.Platform == nil || m.Platform.OS == "unknown" {
				continue
			}
			base, err := idx.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			child := mutate.Annotations(appOn(t, base), annotate(nil, m.Digest.String())).(v1.Image)
			adds = append(adds, mutate.IndexAddendum{Add: child, Descriptor: v1.Descriptor{Platform: m.Platform}})
		}
		out := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
		app = mutate.Annotations(out, annotate(nil, bd.String()))
	}
	built := push(t, host, "app:v1", app)
	return appJob(host, "first", bd), built
}

// appJob is a job of the rule app:v1 on python:3.8, triggered by its move
// to bd.
func appJob(host, id string, bd digest.Digest) *build.Job {
	base := build.ImageRef{Repo: "python", Tag: "3.8"}
	return &build.Job{
		ID: id,
		Rule: &build.Rule{
			Name: "app", Dockerfile: "Dockerfile",
			Tags:     []build.ImageRef{{Repo: "app", Tag: "v1"}, {Repo: "app", Tag: "latest"}},
			Args:     map[string]string{"REGISTRY": host},
			Strategy: "rebase",
			Bases:    []build.ImageRef{base}, FinalBase: &base,
		},
		Trigger:  build.Trigger{Ref: base, Digest: bd, Reason: "push"},
		Registry: host,
		Staging:  build.ImageRef{Repo: "app", Tag: "kiln-build-" + id},
	}
}

// push writes an image or index to ref at host and returns its digest.
func push(t testing.TB, host, ref string, x any) digest.Digest {
	t.Helper()
	tag, err := name.NewTag(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var h v1.Hash
	switch x := x.(type) {
	case v1.Image:
		if err = remote.Write(tag, x); err == nil {
			h, err = x.Digest()
		}
	case v1.ImageIndex:
		if err = remote.WriteIndex(tag, x); err == nil {
			h, err = x.Digest()
		}
	default:
		t.Fatalf("push %T", x)
	}
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(h.String())
}

func get(t testing.TB, host, ref string) *remote.Descriptor {
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

// image reads ref at host and checks it is a valid image.
func image(t testing.TB, host, ref string) v1.Image {
	t.Helper()
	img, err := get(t, host, ref).Image()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("%s is not a valid image: %v", ref, err)
	}
	return img
}

func layers(t testing.TB, img v1.Image) []v1.Layer {
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

// runRebase runs the builder on job and returns what it pushed and its log.
func runRebase(t testing.TB, job *build.Job) (digest.Digest, string) {
	t.Helper()
	var log bytes.Buffer
	d, err := (&Builder{}).Build(context.Background(), job, &log)
	if err != nil {
		t.Fatalf("rebase: %v\nlog:\n%s", err, log.String())
	}
	return d, log.String()
}

// benchBase is a base with three more layers, ~2000 files, ~8 MB.
func benchBase(t testing.TB, seed int64) v1.Image {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	img := baseImage(t, baseOpts{version: fmt.Sprintf("3.8.%d", seed)})
	var ls []v1.Layer
	for l := range 3 {
		files := map[string]string{}
		for i := range 700 {
			buf := make([]byte, 4096)
			rng.Read(buf)
			files[fmt.Sprintf("usr/lib/python3.8/l%d/d%d/f%d.py", l, i%20, i)] = string(buf)
		}
		ls = append(ls, layer(t, files))
	}
	out, err := mutate.AppendLayers(img, ls...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
