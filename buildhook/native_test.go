package buildhook

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
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
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"

	"kiln/registry"
	"kiln/storage"
)

// ---- helpers shared by the native, rebase and provenance tests ----

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
func nbtJob(host, dir, id string, base ImageRef, baseDigest digest.Digest) *Job {
	return &Job{
		ID: id,
		Rule: &Rule{
			Name: "app", Context: dir, Dockerfile: "Dockerfile",
			Tags:     []ImageRef{{Repo: "app", Tag: "v1"}, {Repo: "app", Tag: "latest"}},
			Args:     map[string]string{"REGISTRY": host},
			Builder:  "native",
			Strategy: "build",
			Bases:    []ImageRef{base}, FinalBase: &base,
		},
		Trigger:  Trigger{Ref: base, Digest: baseDigest, Reason: "push"},
		Registry: host,
		Staging:  ImageRef{Repo: "app", Tag: "kiln-build-" + id},
	}
}

type nbtEntry struct {
	hdr     *tar.Header
	content string
}

// nbtLayerFiles reads a layer's tar.
func nbtLayerFiles(t testing.TB, l v1.Layer) map[string]nbtEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]nbtEntry{}
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
		out[h.Name] = nbtEntry{hdr: h, content: string(b)}
		names = append(names, h.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("layer entries not sorted: %v", names)
	}
	return out
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

func nbtBuild(t testing.TB, b Builder, job *Job) (digest.Digest, string) {
	t.Helper()
	var log bytes.Buffer
	d, err := b.Build(context.Background(), job, &log)
	if err != nil {
		t.Fatalf("build: %v\nlog:\n%s", err, log.String())
	}
	return d, log.String()
}

// ---- tests ----

const nbtDockerfile = `# syntax=docker/dockerfile:1
ARG REGISTRY
ARG PY=3.8
FROM ${REGISTRY}/python:${PY}
ARG APP_ENV=prod
ENV APP_ENV=${APP_ENV} APP_HOME=/app
LABEL org.example.app="demo" env=$APP_ENV
WORKDIR $APP_HOME
COPY --chown=1000:1000 src/ ./src/
COPY --chmod=755 run.sh /usr/local/bin/run
COPY config.yml .
COPY tool /bin/
COPY --chown=app:staff config.yml /etc/app/
USER 1000
EXPOSE 8000 9000-9001/udp
VOLUME /data
ENTRYPOINT ["/usr/local/bin/run"]
CMD python app.py
`

func nbtAppContext(t testing.TB) string {
	return nbtContext(t, map[string]string{
		"Dockerfile":         nbtDockerfile,
		".dockerignore":      "src/secret.txt\n**/*.md\n",
		"src/app.py":         "print('hi')\n",
		"src/lib/util.py":    "X = 1\n",
		"src/secret.txt":     "do not ship",
		"src/README.md":      "docs",
		"run.sh":             "#!/bin/sh\nexec python3 /app/src/app.py\n",
		"config.yml":         "debug: false\n",
		"tool":               "tool",
		"unused/ignored.txt": "x",
	})
}

func TestNativeBuild(t *testing.T) {
	host := nbtRegistry(t)
	base := nbtBase(t, nbtBaseOpts{version: "3.8.1"})
	bd := nbtPush(t, host, "python:3.8", base)
	dir := nbtAppContext(t)
	job := nbtJob(host, dir, "b1", ImageRef{Repo: "python", Tag: "3.8"}, bd)
	job.Rule.Args["APP_ENV"] = "staging"

	d, log := nbtBuild(t, &NativeBuilder{}, job)
	for _, want := range []string{"step 1/15: FROM ${REGISTRY}/python:${PY}", "step 7/15: COPY --chmod=755 run.sh /usr/local/bin/run", "pushed " + host + "/app:kiln-build-b1@" + d.String()} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	img := nbtImage(t, host, "app@"+d.String())
	if got := nbtImage(t, host, "app:kiln-build-b1"); got == nil {
		t.Fatal("no staging tag")
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	wantEnv := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "PYTHON_VERSION=3.8.1", "LANG=C.UTF-8", "APP_ENV=staging", "APP_HOME=/app"}
	if !slices.Equal(c.Env, wantEnv) {
		t.Errorf("Env = %q, want %q", c.Env, wantEnv)
	}
	if c.Labels["org.example.app"] != "demo" || c.Labels["env"] != "staging" || c.Labels["maintainer"] != "python team" {
		t.Errorf("Labels = %v", c.Labels)
	}
	if c.WorkingDir != "/app" || c.User != "1000" {
		t.Errorf("WorkingDir %q User %q", c.WorkingDir, c.User)
	}
	if len(c.ExposedPorts) != 3 || c.ExposedPorts["8000/tcp"] != struct{}{} || c.ExposedPorts["9001/udp"] != struct{}{} {
		t.Errorf("ExposedPorts = %v", c.ExposedPorts)
	}
	if _, ok := c.Volumes["/data"]; !ok || len(c.Volumes) != 1 {
		t.Errorf("Volumes = %v", c.Volumes)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/run"}) || !slices.Equal(c.Cmd, []string{"/bin/sh", "-c", "python app.py"}) {
		t.Errorf("Entrypoint %q Cmd %q", c.Entrypoint, c.Cmd)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if !cf.Created.Time.Equal(time.Unix(2000, 0)) {
		t.Errorf("created %v, want the base's", cf.Created)
	}
	mt, _ := img.MediaType()
	if mt != types.OCIManifestSchema1 {
		t.Errorf("media type %s", mt)
	}

	// Layers: the base's two, then WORKDIR and five COPYs.
	layers := nbtLayers(t, img)
	baseLayers := nbtLayers(t, base)
	if len(layers) != len(baseLayers)+6 {
		t.Fatalf("%d layers, want %d", len(layers), len(baseLayers)+6)
	}
	if !slices.Equal(nbtDigests(t, layers[:2]), nbtDigests(t, baseLayers)) {
		t.Error("the base layers are not kept")
	}
	type want struct {
		mode     int64
		uid, gid int
		content  string
		link     string
	}
	checkLayer := func(i int, exp map[string]want) {
		t.Helper()
		got := nbtLayerFiles(t, layers[i])
		var names []string
		for n := range got {
			names = append(names, n)
		}
		sort.Strings(names)
		var expNames []string
		for n := range exp {
			expNames = append(expNames, n)
		}
		sort.Strings(expNames)
		if !slices.Equal(names, expNames) {
			t.Errorf("layer %d has %q, want %q", i, names, expNames)
		}
		for n, w := range exp {
			e, ok := got[n]
			if !ok {
				continue
			}
			h := e.hdr
			if h.Mode != w.mode || h.Uid != w.uid || h.Gid != w.gid || e.content != w.content || h.Linkname != w.link {
				t.Errorf("layer %d %s: mode %o uid %d gid %d content %q link %q; want %+v", i, n, h.Mode, h.Uid, h.Gid, e.content, h.Linkname, w)
			}
			if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uname != "" || h.Gname != "" {
				t.Errorf("layer %d %s: mtime %v uname %q", i, n, h.ModTime, h.Uname)
			}
		}
	}
	checkLayer(2, map[string]want{"app/": {mode: 0o755}})
	checkLayer(3, map[string]want{
		"app/src/":            {mode: 0o755, uid: 1000, gid: 1000},
		"app/src/app.py":      {mode: 0o644, uid: 1000, gid: 1000, content: "print('hi')\n"},
		"app/src/lib/":        {mode: 0o755, uid: 1000, gid: 1000},
		"app/src/lib/util.py": {mode: 0o644, uid: 1000, gid: 1000, content: "X = 1\n"},
	})
	checkLayer(4, map[string]want{"usr/local/bin/run": {mode: 0o755, content: "#!/bin/sh\nexec python3 /app/src/app.py\n"}})
	checkLayer(5, map[string]want{"app/config.yml": {mode: 0o644, content: "debug: false\n"}})
	// /bin is a symlink to usr/bin in the base: the file lands behind it.
	checkLayer(6, map[string]want{"usr/bin/tool": {mode: 0o644, content: "tool"}})
	checkLayer(7, map[string]want{
		"etc/app/":           {mode: 0o755, uid: 1000, gid: 50},
		"etc/app/config.yml": {mode: 0o644, uid: 1000, gid: 50, content: "debug: false\n"},
	})

	// History like docker's: one entry per instruction after the base's.
	var created []string
	var emptyLayer []bool
	for _, h := range cf.History[len(cf.History)-15:] {
		created = append(created, h.CreatedBy)
		emptyLayer = append(emptyLayer, h.EmptyLayer)
	}
	wantHist := []string{
		"ARG APP_ENV=staging", "ENV APP_ENV=staging APP_HOME=/app", "LABEL org.example.app=demo env=staging",
		"WORKDIR /app", "COPY --chown=1000:1000 src/ ./src/", "COPY --chmod=755 run.sh /usr/local/bin/run",
		"COPY config.yml .", "COPY tool /bin/", "COPY --chown=app:staff config.yml /etc/app/", "USER 1000",
		"EXPOSE [8000/tcp 9000/udp 9001/udp]", "VOLUME [/data]", `ENTRYPOINT ["/usr/local/bin/run"]`,
		`CMD ["/bin/sh" "-c" "python app.py"]`,
	}
	if len(cf.History) != 3+len(wantHist) {
		t.Errorf("%d history entries, want %d", len(cf.History), 3+len(wantHist))
	}
	if !slices.Equal(created[1:], wantHist) {
		t.Errorf("history:\n%q\nwant\n%q", created[1:], wantHist)
	}
	wantEmpty := []bool{true, true, true, false, false, false, false, false, false, true, true, true, true, true}
	if !slices.Equal(emptyLayer[1:], wantEmpty) {
		t.Errorf("empty_layer %v, want %v", emptyLayer[1:], wantEmpty)
	}
}

func TestNativeDeterministic(t *testing.T) {
	host := nbtRegistry(t)
	bd := nbtPush(t, host, "python:3.8", nbtBase(t, nbtBaseOpts{version: "3.8.1"}))
	dir := nbtAppContext(t)
	b := &NativeBuilder{}
	d1, _ := nbtBuild(t, b, nbtJob(host, dir, "d1", ImageRef{Repo: "python", Tag: "3.8"}, bd))
	// Another builder (cold caches), other file times: same image.
	later := time.Now().Add(time.Hour)
	for _, f := range []string{"src/app.py", "run.sh", "config.yml"} {
		if err := os.Chtimes(filepath.Join(dir, f), later, later); err != nil {
			t.Fatal(err)
		}
	}
	d2, _ := nbtBuild(t, &NativeBuilder{}, nbtJob(host, dir, "d2", ImageRef{Repo: "python", Tag: "3.8"}, bd))
	if d1 != d2 {
		t.Errorf("same inputs, digests %s and %s", d1, d2)
	}
	// A change of content changes it.
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte("debug: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d3, _ := nbtBuild(t, b, nbtJob(host, dir, "d3", ImageRef{Repo: "python", Tag: "3.8"}, bd))
	if d3 == d1 {
		t.Error("a changed file did not change the digest")
	}
	// SOURCE_DATE_EPOCH sets file times and created.
	job := nbtJob(host, dir, "d4", ImageRef{Repo: "python", Tag: "3.8"}, bd)
	job.Rule.Args["SOURCE_DATE_EPOCH"] = "1700000000"
	d4, _ := nbtBuild(t, b, job)
	img := nbtImage(t, host, "app@"+d4.String())
	cf, _ := img.ConfigFile()
	if !cf.Created.Time.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("created %v", cf.Created)
	}
	ls := nbtLayers(t, img)
	for _, e := range nbtLayerFiles(t, ls[len(ls)-1]) {
		if !e.hdr.ModTime.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s mtime %v", e.hdr.Name, e.hdr.ModTime)
		}
	}
}

func TestNativeMultiStage(t *testing.T) {
	host := nbtRegistry(t)
	bd := nbtPush(t, host, "python:3.8", nbtBase(t, nbtBaseOpts{version: "3.8.1"}))
	dir := nbtContext(t, map[string]string{
		"Dockerfile": `ARG REGISTRY
FROM $REGISTRY/python:3.8 AS builder
COPY src/ /build/
WORKDIR /build
ENV BUILT=yes

FROM builder AS unused
RUN make everything

FROM scratch
COPY --from=builder /build/app.py /build/lib /app/
COPY --from=0 /bin/python3 /usr/local/lib/python.txt /opt/
COPY --from=builder /usr/local/bin/python-link /python
COPY --from=builder /usr/lib/ /lib/
COPY <<EOF /etc/motd
hello
EOF
ENTRYPOINT ["/python"]
`,
		"src/app.py":      "app",
		"src/lib/util.py": "util",
	})
	job := nbtJob(host, dir, "m1", ImageRef{Repo: "python", Tag: "3.8"}, bd)
	d, log := nbtBuild(t, &NativeBuilder{}, job)
	if strings.Contains(log, "make everything") {
		t.Error("the unused stage was built")
	}
	img := nbtImage(t, host, "app@"+d.String())
	cf, _ := img.ConfigFile()
	if !slices.Equal(cf.Config.Env, []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}) {
		t.Errorf("scratch Env = %q", cf.Config.Env)
	}
	if cf.Config.WorkingDir != "/" || cf.Architecture != "amd64" {
		t.Errorf("WorkingDir %q arch %q", cf.Config.WorkingDir, cf.Architecture)
	}
	ls := nbtLayers(t, img)
	if len(ls) != 5 {
		t.Fatalf("%d layers, want 5", len(ls))
	}
	files := map[string]nbtEntry{}
	for _, l := range ls {
		for n, e := range nbtLayerFiles(t, l) {
			files[n] = e
		}
	}
	wantFiles := map[string]string{
		"app/app.py":     "app",
		"app/util.py":    "util",
		"opt/python3":    "python amd64",
		"opt/python.txt": "python 3.8.1",
		"python":         "python amd64",
		"lib/os-arch":    "amd64",
		"etc/motd":       "hello\n",
	}
	for n, c := range wantFiles {
		if e, ok := files[n]; !ok || e.content != c {
			t.Errorf("%s = %q (present %v), want %q", n, e.content, ok, c)
		}
	}
	if e := files["python"]; e.hdr != nil && e.hdr.Mode != 0o755 {
		t.Errorf("/python mode %o, want the target's 0755", e.hdr.Mode)
	}
	if _, ok := files["lib/os-arch2"]; ok {
		t.Error("a whited-out base file was copied")
	}
	for _, dirName := range []string{"app/", "opt/", "lib/", "etc/"} {
		if e, ok := files[dirName]; !ok || e.hdr.Typeflag != tar.TypeDir {
			t.Errorf("no directory %s", dirName)
		}
	}
}

func TestNativeMultiPlatform(t *testing.T) {
	host := nbtRegistry(t)
	amd := nbtBase(t, nbtBaseOpts{arch: "amd64", version: "3.8.1"})
	arm := nbtBase(t, nbtBaseOpts{arch: "arm64", version: "3.8.1"})
	bd := nbtPush(t, host, "python:3.8", nbtIndex(t, amd, arm))
	dir := nbtContext(t, map[string]string{
		"Dockerfile": `ARG REGISTRY
FROM ${REGISTRY}/python:3.8
ARG TARGETARCH
COPY common.txt /srv/
COPY bin/${TARGETARCH}/tool /usr/local/bin/tool
LABEL arch=$TARGETARCH
`,
		"common.txt":     "same everywhere",
		"bin/amd64/tool": "tool for amd64",
		"bin/arm64/tool": "tool for arm64",
	})
	job := nbtJob(host, dir, "p1", ImageRef{Repo: "python", Tag: "3.8"}, bd)
	d, log := nbtBuild(t, &NativeBuilder{}, job)
	if !strings.Contains(log, "[linux/arm64/v8] step 4/5: COPY bin/${TARGETARCH}/tool /usr/local/bin/tool") {
		t.Errorf("log:\n%s", log)
	}
	desc := nbtGet(t, host, "app@"+d.String())
	if desc.MediaType != types.OCIImageIndex {
		t.Fatalf("pushed %s, want an index", desc.MediaType)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("%d manifests, want 2 (the attestation is not a platform)", len(im.Manifests))
	}
	var commonLayers []string
	for i, m := range im.Manifests {
		want := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}}[i]
		if m.Platform == nil || !m.Platform.Equals(want) {
			t.Errorf("manifest %d platform %v, want %v", i, m.Platform, want)
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		base := []v1.Image{amd, arm}[i]
		ls := nbtLayers(t, img)
		if !slices.Equal(nbtDigests(t, ls[:2]), nbtDigests(t, nbtLayers(t, base))) {
			t.Errorf("%s: not on its platform's base layers", want.Architecture)
		}
		commonLayers = append(commonLayers, nbtDigests(t, ls[2:3])[0])
		tool := nbtLayerFiles(t, ls[3])["usr/local/bin/tool"]
		if tool.content != "tool for "+want.Architecture {
			t.Errorf("%s: tool %q", want.Architecture, tool.content)
		}
		cf, _ := img.ConfigFile()
		if cf.Config.Labels["arch"] != want.Architecture || cf.Architecture != want.Architecture {
			t.Errorf("%s: label %q, config arch %q", want.Architecture, cf.Config.Labels["arch"], cf.Architecture)
		}
	}
	if commonLayers[0] != commonLayers[1] {
		t.Error("the same COPY gave different layers on the two platforms")
	}
}

func TestNativeRunFails(t *testing.T) {
	host := nbtRegistry(t)
	dir := nbtContext(t, map[string]string{
		"Dockerfile": "ARG REGISTRY\nFROM $REGISTRY/python:3.8\nCOPY a /a\nRUN pip install flask \\\n  gunicorn\nCMD [\"x\"]\n",
		"a":          "a",
	})
	job := nbtJob(host, dir, "r1", ImageRef{Repo: "python", Tag: "3.8"}, "")
	_, err := (&NativeBuilder{}).Build(context.Background(), job, io.Discard)
	want := "Dockerfile line 4: RUN needs a container; use builder docker or buildah"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestNativeErrors(t *testing.T) {
	host := nbtRegistry(t)
	bd := nbtPush(t, host, "python:3.8", nbtBase(t, nbtBaseOpts{version: "3.8.1"}))
	var tgz bytes.Buffer
	tw := tar.NewWriter(&tgz)
	tw.WriteHeader(&tar.Header{Name: "x", Size: 1, Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	for _, tc := range []struct {
		name, dockerfile, want string
	}{
		{"missing", "COPY nothere /x", "Dockerfile line 3: COPY nothere: not found in build context"},
		{"ignored", "COPY secret.txt /x", "Dockerfile line 3: COPY secret.txt: not found in build context (or excluded by .dockerignore)"},
		{"archive", "ADD files.tar /x/", "Dockerfile line 3: ADD files.tar: a local archive is unpacked by ADD"},
		{"url", "ADD https://example.com/x /x", "Dockerfile line 3: ADD https://example.com/x: remote sources are not supported"},
		{"multi", "COPY a b /x", "Dockerfile line 3: COPY with more than one source file needs a directory destination"},
		{"chown", "COPY --chown=nobody a /x", `Dockerfile line 3: --chown=nobody: user "nobody" not found in /etc/passwd`},
		{"stage", "COPY --from=5 a /x", "Dockerfile line 3: COPY --from=5: no such earlier stage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := nbtContext(t, map[string]string{
				"Dockerfile":    "ARG REGISTRY\nFROM $REGISTRY/python:3.8\n" + tc.dockerfile + "\n",
				".dockerignore": "secret.txt",
				"secret.txt":    "s", "a": "a", "b": "b", "files.tar": tgz.String(),
			})
			_, err := (&NativeBuilder{}).Build(context.Background(), nbtJob(host, dir, "e1", ImageRef{Repo: "python", Tag: "3.8"}, bd), io.Discard)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// ADD of a plain file works.
	dir := nbtContext(t, map[string]string{"Dockerfile": "ARG REGISTRY\nFROM $REGISTRY/python:3.8\nADD a /x\n", "a": "a"})
	nbtBuild(t, &NativeBuilder{}, nbtJob(host, dir, "e2", ImageRef{Repo: "python", Tag: "3.8"}, bd))
}

// BenchmarkNativeBuild measures a build from the trigger to the pushed
// staging image, on a python-like base of ~2100 files in 5 layers (~9 MB),
// with a 200-file context: cold, a new NativeBuilder each time (the base
// filesystem is read again); warm, one NativeBuilder (its layer headers
// cached, as when a base moves under many rules).
func BenchmarkNativeBuild(b *testing.B) {
	host := nbtRegistry(b)
	base := nbtBenchBase(b, 1)
	bd := nbtPush(b, host, "python:3.8", base)
	files := map[string]string{"Dockerfile": nbtDockerfile, ".dockerignore": "src/secret.txt\n"}
	for i := range 200 {
		files[fmt.Sprintf("src/pkg%d/mod%d.py", i%10, i)] = strings.Repeat("x = 1\n", 200)
	}
	files["run.sh"], files["config.yml"], files["tool"] = "#!/bin/sh\n", "a: 1\n", "t"
	dir := nbtContext(b, files)
	warm := &NativeBuilder{}
	for _, bc := range []struct {
		name    string
		builder func() *NativeBuilder
	}{
		{"cold", func() *NativeBuilder { return &NativeBuilder{} }},
		{"warm", func() *NativeBuilder { return warm }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				job := nbtJob(host, dir, fmt.Sprintf("bench-%s-%d", bc.name, i), ImageRef{Repo: "python", Tag: "3.8"}, bd)
				if _, err := bc.builder().Build(context.Background(), job, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
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

func TestNativeConfigInstructions(t *testing.T) {
	host := nbtRegistry(t)
	rnd, err := random.Image(64, 1) // Docker media types
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := rnd.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.OnBuild = []string{"COPY onbuild.txt /onbuild.txt"}
	base, err := mutate.ConfigFile(rnd, cf)
	if err != nil {
		t.Fatal(err)
	}
	nbtPush(t, host, "tools:1", base)
	dir := nbtContext(t, map[string]string{
		"Dockerfile": `ARG REGISTRY
FROM $REGISTRY/tools:1
MAINTAINER kiln
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/ || exit 1
ONBUILD COPY . /src
COPY . /ctx/
CMD echo hi
`,
		".dockerignore": "docs\n!docs/keep.md\nDockerfile\n",
		"docs/keep.md":  "keep",
		"docs/drop.md":  "drop",
		"a.txt":         "a",
		"onbuild.txt":   "from the base's trigger",
	})
	job := nbtJob(host, dir, "c1", ImageRef{Repo: "tools", Tag: "1"}, "")
	d, log := nbtBuild(t, &NativeBuilder{}, job)
	if !strings.Contains(log, "running ONBUILD COPY onbuild.txt /onbuild.txt") {
		t.Errorf("log:\n%s", log)
	}
	img := nbtImage(t, host, "app@"+d.String())
	if mt, _ := img.MediaType(); mt != types.DockerManifestSchema2 {
		t.Errorf("media type %s, want the base's", mt)
	}
	got, _ := img.ConfigFile()
	c := got.Config
	if got.Author != "kiln" || c.StopSignal != "SIGQUIT" || !slices.Equal(c.Shell, []string{"/bin/bash", "-o", "pipefail", "-c"}) {
		t.Errorf("Author %q StopSignal %q Shell %q", got.Author, c.StopSignal, c.Shell)
	}
	if !slices.Equal(c.Cmd, []string{"/bin/bash", "-o", "pipefail", "-c", "echo hi"}) {
		t.Errorf("Cmd %q", c.Cmd)
	}
	if h := c.Healthcheck; h == nil || !slices.Equal(h.Test, []string{"CMD-SHELL", "curl -f http://localhost/ || exit 1"}) || h.Interval != 30*time.Second || h.Retries != 3 {
		t.Errorf("Healthcheck %+v", c.Healthcheck)
	}
	if !slices.Equal(c.OnBuild, []string{"COPY . /src"}) {
		t.Errorf("OnBuild %q: the base's trigger must be dropped, the Dockerfile's kept", c.OnBuild)
	}
	ls := nbtLayers(t, img)
	if len(ls) != 3 {
		t.Fatalf("%d layers, want 3", len(ls))
	}
	if mt, _ := ls[2].MediaType(); mt != types.DockerLayer {
		t.Errorf("layer media type %s", mt)
	}
	if f := nbtLayerFiles(t, ls[1]); f["onbuild.txt"].content != "from the base's trigger" {
		t.Errorf("ONBUILD layer %v", f)
	}
	var names []string
	for n := range nbtLayerFiles(t, ls[2]) {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"ctx/", "ctx/.dockerignore", "ctx/a.txt", "ctx/docs/", "ctx/docs/keep.md", "ctx/onbuild.txt"}
	if !slices.Equal(names, want) {
		t.Errorf("COPY . /ctx/ gave %q, want %q", names, want)
	}
}

// The native builder's view of a base must be mutate.Extract's.
func TestNativeFSMatchesExtract(t *testing.T) {
	img := nbtBase(t, nbtBaseOpts{version: "3.8.1"})
	img, err := mutate.AppendLayers(img,
		nbtLayer(t, map[string]nbtFile{
			"usr/local/lib/.wh..wh..opq":  {},
			"usr/local/lib/new.txt":       {content: "new"},
			"etc/passwd":                  {content: "root:x:0:0::/:/bin/sh\n"},
			"usr/lib":                     {content: "a file now"},
			"usr/local/bin/.wh.pip":       {},
			"opt":                         {dir: true, mode: 0o700},
			"opt/tool":                    {link: "../usr/bin/python3"},
			"usr/local/bin/python-link-2": {link: "python-link"},
		}),
		nbtLayer(t, map[string]nbtFile{"usr/lib": {dir: true}, "usr/lib/again": {content: "again"}}),
	)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newNFSBase(context.Background(), &nfsLayerCache{}, img)
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	want := map[string]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n, _ := nfsCleanName(h.Name)
		if n != "" {
			want[n] = h.Typeflag
		}
	}
	got := map[string]byte{}
	for n, node := range b.nodes {
		got[n] = node.typ
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("view\n%v\nExtract\n%v", got, want)
	}
	v := &nfsView{base: b}
	for in, want := range map[string]string{
		"/opt/tool":                 "usr/bin/python3", // relative link, .. from /opt
		"/bin/../opt":               "usr/opt",         // .. after a symlink, like the kernel
		"usr/local/bin/python-link": "usr/bin/python3",
		"/nothere/x":                "nothere/x",
	} {
		if r, err := v.resolve(in, true); err != nil || r != want {
			t.Errorf("resolve(%s) = %q, %v; want %s", in, r, err, want)
		}
	}
	data, err := v.readFile(context.Background(), &nfsSpool{f: nbtTempFile(t)}, "/usr/local/bin/python-link-2")
	if err != nil || string(data) != "python amd64" {
		t.Errorf("readFile = %q, %v", data, err)
	}
}

func nbtTempFile(t testing.TB) *os.File {
	f, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestNativeImageRef(t *testing.T) {
	job := nbtJob("127.0.0.1:5000", "", "x", ImageRef{Repo: "python", Tag: "3.8"}, digest.Digest("sha256:"+strings.Repeat("a", 64)))
	job.Rule.Bases = append(job.Rule.Bases, ImageRef{Repo: "team/base", Tag: "1"})
	for _, tc := range []struct {
		hosts    []string
		from     string
		want     string
		insecure bool
	}{
		// The tag that moved is pinned to the trigger's digest.
		{nil, "localhost:5000/python:3.8", "127.0.0.1:5000/python@sha256:" + strings.Repeat("a", 64), true},
		{nil, "127.0.0.1:5000/python:3.9", "127.0.0.1:5000/python:3.9", true},
		{nil, "[::1]:5000/team/base:1", "127.0.0.1:5000/team/base:1", true},
		// Without Hosts, a rule base under another name is this registry.
		{nil, "kiln.example.com/team/base:1", "127.0.0.1:5000/team/base:1", true},
		{nil, "kiln.example.com/team/other:1", "kiln.example.com/team/other:1", false},
		{[]string{"kiln.example.com"}, "kiln.example.com/team/other:1", "127.0.0.1:5000/team/other:1", true},
		{[]string{"kiln.example.com"}, "ghcr.io/team/base:1", "ghcr.io/team/base:1", false},
		{nil, "python:3.8", "index.docker.io/library/python:3.8", false},
		{nil, "localhost:5001/python:3.8", "localhost:5001/python:3.8", true},
	} {
		nb := &nativeBuild{b: &NativeBuilder{Hosts: tc.hosts}, job: job}
		ref, err := nb.imageRef(tc.from)
		if err != nil {
			t.Fatal(err)
		}
		if ref.Name() != tc.want || (ref.Context().Scheme() == "http") != tc.insecure {
			t.Errorf("%v %s -> %s (%s), want %s (insecure %v)", tc.hosts, tc.from, ref.Name(), ref.Context().Scheme(), tc.want, tc.insecure)
		}
	}
}
