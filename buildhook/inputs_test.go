package buildhook

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/config"
	"kiln/internal/imagetest"
	"kiln/registry"
	"kiln/storage"
)

// countingBuilder counts its builds and builds nothing.
type countingBuilder struct {
	name   string
	builds atomic.Int32
}

func (b *countingBuilder) Name() string { return b.name }

func (b *countingBuilder) Build(context.Context, *build.Job, io.Writer) (digest.Digest, error) {
	b.builds.Add(1)
	return "", nil
}

// Whatever the builder, a Dockerfile that pulls from another registry (a
// port of this host here) is refused before the builder starts.
func TestServiceRefusesForeignImagesForEveryBuilder(t *testing.T) {
	t.Parallel()
	store := storage.NewInMemory(storage.Options{})
	srv := httptest.NewServer(registry.New(store, registry.Options{}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	for rel, content := range map[string]string{
		"from/Dockerfile": "FROM 127.0.0.1:1/x:1\nRUN true\n",
		"copy/Dockerfile": "ARG REGISTRY\nFROM ${REGISTRY}/base:1\nCOPY --from=127.0.0.1:1/x:1 /a /a\nRUN true\n",
		"ok/Dockerfile":   "ARG REGISTRY\nFROM docker.io/library/alpine:3 AS a\nFROM ${REGISTRY}/base:1\nRUN true\n",
	} {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := map[string]string{"REGISTRY": host}
	var builds []config.Build
	for _, n := range []string{"from", "copy", "ok"} {
		// ok's alpine is not in the cache; onbuild: true skips reading it.
		builds = append(builds, config.Build{Name: n, Context: n, Dockerfile: "Dockerfile", Tags: []string{n + ":v1"}, Args: args, Builder: "docker", Strategy: "build",
			OnBuild: n == "ok"})
	}
	upstreams := []string{"docker.io"}
	rules, err := LoadRules(builds, dir, []string{host}, upstreams)
	if err != nil {
		t.Fatal(err)
	}
	docker := &countingBuilder{name: "docker"}
	svc, err := NewService(ServiceOptions{Store: store, Rules: rules, Registry: host, Hosts: []string{host}, Upstreams: upstreams,
		Builders: map[string]build.Builder{"docker": docker}})
	if err != nil {
		t.Fatal(err)
	}
	base, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	imagetest.Push(t, host, "base:1", base)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); svc.Wait() })
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, n := range []string{"from", "copy", "ok"} {
		job, err := svc.Trigger(n, false)
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = job.ID
	}
	if err := svc.WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"from", "copy"} {
		r, err := svc.Records().Get(t.Context(), ids[n])
		if err != nil || r.Status != StatusFailed || !strings.Contains(r.Error, "builds only pull images of this registry or its mirrored upstreams") {
			t.Errorf("rule %s: %+v %v", n, r, err)
		}
	}
	// ok pulls from this registry and a mirrored upstream: the builder ran
	// (and then failed to find what it did not push).
	if n := docker.builds.Load(); n != 1 {
		t.Errorf("the builder ran %d times, want once (rule ok)", n)
	}
}

// docker and buildah run a base's ONBUILD triggers themselves: a base with
// triggers fails the build unless the rule sets onbuild.
func TestServiceRefusesOnbuildBasesForOtherBuilders(t *testing.T) {
	t.Parallel()
	store := storage.NewInMemory(storage.Options{})
	srv := httptest.NewServer(registry.New(store, registry.Options{}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("ARG REGISTRY\nFROM ${REGISTRY}/base:1\nRUN true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := imagetest.Base(t, imagetest.BaseOptions{Version: "3.8.1"})
	cf, _ := base.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.OnBuild = []string{"COPY . /loot/"}
	base, err := mutate.ConfigFile(base, cf)
	if err != nil {
		t.Fatal(err)
	}
	imagetest.Push(t, host, "base:1", base)
	for _, onbuild := range []bool{false, true} {
		rules, err := LoadRules([]config.Build{{Name: "app", Context: dir, Dockerfile: "Dockerfile", Tags: []string{"app:v1"},
			Args: map[string]string{"REGISTRY": host}, Builder: "buildah", Strategy: "build", OnBuild: onbuild}}, dir, []string{host}, nil)
		if err != nil {
			t.Fatal(err)
		}
		buildah := &countingBuilder{name: "buildah"}
		svc, err := NewService(ServiceOptions{Store: store, Rules: rules, Registry: host, Hosts: []string{host},
			Builders: map[string]build.Builder{"buildah": buildah}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		job, err := svc.Trigger("app", false)
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.WaitIdle(t.Context()); err != nil {
			t.Fatal(err)
		}
		cancel()
		svc.Wait()
		r, err := svc.Records().Get(t.Context(), job.ID)
		if err != nil {
			t.Fatal(err)
		}
		refused := strings.Contains(r.Error, `has ONBUILD triggers ["COPY . /loot/"]`)
		if refused == onbuild || (buildah.builds.Load() == 1) != onbuild {
			t.Errorf("onbuild %v: builder ran %d times, record %+v", onbuild, buildah.builds.Load(), r)
		}
	}
}
