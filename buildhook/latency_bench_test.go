package buildhook

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kiln/config"
	"kiln/registry"
	"kiln/storage"
)

// BenchmarkBuildOnPush measures what a user waits for: from the answer to
// a base's manifest PUT until the derived tag points at the rebuilt image
// (build, provenance, push, tag move), for the in-process strategies.
func BenchmarkBuildOnPush(b *testing.B) {
	for _, tc := range []struct{ name, builder, strategy string }{
		{"native", "native", "build"},
		{"rebase", "native", "rebase"},
	} {
		b.Run(tc.name, func(b *testing.B) { benchBuildOnPush(b, tc.builder, tc.strategy) })
	}
}

func benchBuildOnPush(b *testing.B, builder, strategy string) {
	moved := make(chan struct{}, 16)
	moves := new(TagMoves)
	store := storage.NewInMemory(storage.Options{OnTagMoved: func(m storage.TagMove) {
		moves.TagMoved(m)
		if m.Repo == "app" && m.Tag == "v1" {
			moved <- struct{}{}
		}
	}})
	srv := httptest.NewServer(registry.New(store, registry.Options{DeleteEnabled: true}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("ARG REGISTRY\nFROM ${REGISTRY}/base:1\nENV APP=1\nCOPY app.py /app/app.py\nCMD [\"/app/app.py\"]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app.py"), []byte("print('hi')\n"), 0o644)
	rules, err := LoadRules([]config.Build{{Name: "app", Context: dir, Dockerfile: "Dockerfile", Tags: []string{"app:v1"},
		Args: map[string]string{"REGISTRY": host}, Builder: builder, Strategy: strategy}}, dir, []string{host}, nil)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := NewService(ServiceOptions{Store: store, TagMoves: moves, Rules: rules, Registry: host, Hosts: []string{host}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); svc.Wait() }()
	svc.Start(ctx)

	// A 1 MB base in three layers, as in the measurements.
	base, err := random.Image(350_000, 3)
	if err != nil {
		b.Fatal(err)
	}
	ref, _ := name.ParseReference(host+"/base:1", name.Insecure)
	push := func() {
		layer, _ := random.Layer(1024, "application/vnd.docker.image.rootfs.diff.tar.gzip")
		img, err := mutate.AppendLayers(base, layer)
		if err != nil {
			b.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			b.Fatal(err)
		}
	}
	wait := func() {
		select {
		case <-moved:
		case <-time.After(time.Minute):
			b.Fatal("derived tag did not move")
		}
	}
	push() // the first build: rebase has nothing to rebase yet
	wait()
	for b.Loop() {
		b.StopTimer()
		push()
		b.StartTimer()
		wait()
	}
}
