package native

import (
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"kiln/buildhook/build"
	"kiln/internal/imagetest"
)

func TestConfigInstructions(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
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
	imagetest.Push(t, host, "tools:1", base)
	dir := imagetest.ContextDir(t, map[string]string{
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
	job := imagetest.Job(host, dir, "c1", build.ImageRef{Repo: "tools", Tag: "1"}, "")
	job.Rule.OnBuild = true
	d, log := imagetest.Build(t, &Builder{}, job)
	if !strings.Contains(log, "running ONBUILD COPY onbuild.txt /onbuild.txt") {
		t.Errorf("log:\n%s", log)
	}
	img := imagetest.Pull(t, host, "app@"+d.String())
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
	ls := imagetest.Layers(t, img)
	if len(ls) != 3 {
		t.Fatalf("%d layers, want 3", len(ls))
	}
	if mt, _ := ls[2].MediaType(); mt != types.DockerLayer {
		t.Errorf("layer media type %s", mt)
	}
	if f := layerFiles(t, ls[1]); f["onbuild.txt"].Content != "from the base's trigger" {
		t.Errorf("ONBUILD layer %v", f)
	}
	var names []string
	for n := range layerFiles(t, ls[2]) {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"ctx/", "ctx/.dockerignore", "ctx/a.txt", "ctx/docs/", "ctx/docs/keep.md", "ctx/onbuild.txt"}
	if !slices.Equal(names, want) {
		t.Errorf("COPY . /ctx/ gave %q, want %q", names, want)
	}
}
