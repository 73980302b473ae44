package native

import (
	"archive/tar"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"kiln/buildhook/build"
	"kiln/internal/imagetest"
)

const benchDockerfile = `# syntax=docker/dockerfile:1
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

func appContext(t testing.TB) string {
	return imagetest.ContextDir(t, map[string]string{
		"Dockerfile":         benchDockerfile,
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

func TestBuild(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
	base := imagetest.Base(t, imagetest.BaseOptions{Version: "3.8.1"})
	bd := imagetest.Push(t, host, "python:3.8", base)
	dir := appContext(t)
	job := imagetest.Job(host, dir, "b1", build.ImageRef{Repo: "python", Tag: "3.8"}, bd)
	job.Rule.Args["APP_ENV"] = "staging"

	d, log := imagetest.Build(t, &Builder{}, job)
	for _, want := range []string{"step 1/15: FROM ${REGISTRY}/python:${PY}", "step 7/15: COPY --chmod=755 run.sh /usr/local/bin/run", "pushed " + host + "/app:kiln-build-b1@" + d.String()} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	img := imagetest.Pull(t, host, "app@"+d.String())
	if got := imagetest.Pull(t, host, "app:kiln-build-b1"); got == nil {
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
	layers := imagetest.Layers(t, img)
	baseLayers := imagetest.Layers(t, base)
	if len(layers) != len(baseLayers)+6 {
		t.Fatalf("%d layers, want %d", len(layers), len(baseLayers)+6)
	}
	if !slices.Equal(imagetest.LayerDigests(t, layers[:2]), imagetest.LayerDigests(t, baseLayers)) {
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
		got := layerFiles(t, layers[i])
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
			h := e.Header
			if h.Mode != w.mode || h.Uid != w.uid || h.Gid != w.gid || e.Content != w.content || h.Linkname != w.link {
				t.Errorf("layer %d %s: mode %o uid %d gid %d content %q link %q; want %+v", i, n, h.Mode, h.Uid, h.Gid, e.Content, h.Linkname, w)
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

func TestDeterministic(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
	bd := imagetest.Push(t, host, "python:3.8", imagetest.Base(t, imagetest.BaseOptions{Version: "3.8.1"}))
	dir := appContext(t)
	b := &Builder{}
	d1, _ := imagetest.Build(t, b, imagetest.Job(host, dir, "d1", build.ImageRef{Repo: "python", Tag: "3.8"}, bd))
	// Another builder (cold caches), other file times: same image.
	later := time.Now().Add(time.Hour)
	for _, f := range []string{"src/app.py", "run.sh", "config.yml"} {
		if err := os.Chtimes(filepath.Join(dir, f), later, later); err != nil {
			t.Fatal(err)
		}
	}
	d2, _ := imagetest.Build(t, &Builder{}, imagetest.Job(host, dir, "d2", build.ImageRef{Repo: "python", Tag: "3.8"}, bd))
	if d1 != d2 {
		t.Errorf("same inputs, digests %s and %s", d1, d2)
	}
	// A change of content changes it.
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte("debug: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d3, _ := imagetest.Build(t, b, imagetest.Job(host, dir, "d3", build.ImageRef{Repo: "python", Tag: "3.8"}, bd))
	if d3 == d1 {
		t.Error("a changed file did not change the digest")
	}
	// SOURCE_DATE_EPOCH sets file times and created.
	job := imagetest.Job(host, dir, "d4", build.ImageRef{Repo: "python", Tag: "3.8"}, bd)
	job.Rule.Args["SOURCE_DATE_EPOCH"] = "1700000000"
	d4, _ := imagetest.Build(t, b, job)
	img := imagetest.Pull(t, host, "app@"+d4.String())
	cf, _ := img.ConfigFile()
	if !cf.Created.Time.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("created %v", cf.Created)
	}
	ls := imagetest.Layers(t, img)
	for _, e := range layerFiles(t, ls[len(ls)-1]) {
		if !e.Header.ModTime.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s mtime %v", e.Header.Name, e.Header.ModTime)
		}
	}
}

func TestMultiStage(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
	bd := imagetest.Push(t, host, "python:3.8", imagetest.Base(t, imagetest.BaseOptions{Version: "3.8.1"}))
	dir := imagetest.ContextDir(t, map[string]string{
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
	job := imagetest.Job(host, dir, "m1", build.ImageRef{Repo: "python", Tag: "3.8"}, bd)
	d, log := imagetest.Build(t, &Builder{}, job)
	if strings.Contains(log, "make everything") {
		t.Error("the unused stage was built")
	}
	img := imagetest.Pull(t, host, "app@"+d.String())
	cf, _ := img.ConfigFile()
	if !slices.Equal(cf.Config.Env, []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}) {
		t.Errorf("scratch Env = %q", cf.Config.Env)
	}
	if cf.Config.WorkingDir != "/" || cf.Architecture != "amd64" {
		t.Errorf("WorkingDir %q arch %q", cf.Config.WorkingDir, cf.Architecture)
	}
	ls := imagetest.Layers(t, img)
	if len(ls) != 5 {
		t.Fatalf("%d layers, want 5", len(ls))
	}
	files := map[string]imagetest.Entry{}
	for _, l := range ls {
		for n, e := range layerFiles(t, l) {
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
		if e, ok := files[n]; !ok || e.Content != c {
			t.Errorf("%s = %q (present %v), want %q", n, e.Content, ok, c)
		}
	}
	if e := files["python"]; e.Header != nil && e.Header.Mode != 0o755 {
		t.Errorf("/python mode %o, want the target's 0755", e.Header.Mode)
	}
	if _, ok := files["lib/os-arch2"]; ok {
		t.Error("a whited-out base file was copied")
	}
	for _, dirName := range []string{"app/", "opt/", "lib/", "etc/"} {
		if e, ok := files[dirName]; !ok || e.Header.Typeflag != tar.TypeDir {
			t.Errorf("no directory %s", dirName)
		}
	}
}

func TestMultiPlatform(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
	amd := imagetest.Base(t, imagetest.BaseOptions{Arch: "amd64", Version: "3.8.1"})
	arm := imagetest.Base(t, imagetest.BaseOptions{Arch: "arm64", Version: "3.8.1"})
	bd := imagetest.Push(t, host, "python:3.8", imagetest.Index(t, amd, arm))
	dir := imagetest.ContextDir(t, map[string]string{
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
	job := imagetest.Job(host, dir, "p1", build.ImageRef{Repo: "python", Tag: "3.8"}, bd)
	d, log := imagetest.Build(t, &Builder{}, job)
	if !strings.Contains(log, "[linux/arm64/v8] step 4/5: COPY bin/${TARGETARCH}/tool /usr/local/bin/tool") {
		t.Errorf("log:\n%s", log)
	}
	desc := imagetest.Get(t, host, "app@"+d.String())
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
		ls := imagetest.Layers(t, img)
		if !slices.Equal(imagetest.LayerDigests(t, ls[:2]), imagetest.LayerDigests(t, imagetest.Layers(t, base))) {
			t.Errorf("%s: not on its platform's base layers", want.Architecture)
		}
		commonLayers = append(commonLayers, imagetest.LayerDigests(t, ls[2:3])[0])
		tool := layerFiles(t, ls[3])["usr/local/bin/tool"]
		if tool.Content != "tool for "+want.Architecture {
			t.Errorf("%s: tool %q", want.Architecture, tool.Content)
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
