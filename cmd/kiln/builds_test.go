package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kiln/buildhook"
	"kiln/buildhook/build"
	"kiln/registry"
	"kiln/storage"
)

// TestBuildsCandidatesAndAutoRebase drives `kiln builds` against the build
// API of an in-process kiln with autorebase on.
func TestBuildsCandidatesAndAutoRebase(t *testing.T) {
	t.Parallel()
	moves := new(buildhook.TagMoves)
	store := storage.NewInMemory(storage.Options{OnTagMoved: moves.TagMoved})
	reg := httptest.NewServer(registry.New(store, registry.Options{DeleteEnabled: true}))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	svc, err := buildhook.NewService(buildhook.ServiceOptions{Store: store, TagMoves: moves, Registry: host, Hosts: []string{host}, AutoRebase: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); svc.Wait() }()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(svc.Handler())
	defer api.Close()

	push := func(repoTag string, img v1.Image) v1.Hash {
		t.Helper()
		ref, _ := name.ParseReference(host+"/"+repoTag, name.Insecure)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return d
	}
	derived := func(base v1.Image) v1.Image {
		t.Helper()
		img, err := mutate.AppendLayers(base, mustLayer(t))
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	waitIdle := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := svc.WaitIdle(ctx); err != nil {
			t.Fatal(err)
		}
	}
	kiln := func(args ...string) string {
		t.Helper()
		cmd := newRootCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(append(append([]string{"builds"}, args...), "--server", api.URL))
		if err := cmd.Execute(); err != nil {
			t.Fatalf("kiln builds %v: %v", args, err)
		}
		return out.String()
	}

	base, _ := random.Image(256, 2)
	bd := push("base:1", base)
	push("app:v1", derived(base))
	other, _ := random.Image(256, 2)
	push("other:v1", other)
	waitIdle()

	out := kiln("candidates")
	if !strings.Contains(out, "app:v1") || !strings.Contains(out, "base:1") || !strings.Contains(out, "2 of 3") ||
		!strings.Contains(out, bd.String()) || strings.Contains(out, "other:v1") ||
		!strings.Contains(out, "crane mutate --annotation "+build.AnnotationBaseName+"="+strings.TrimPrefix(api.URL, "http://")+"/base:1") {
		t.Errorf("candidates:\n%s", out)
	}

	// Adopt it as the hint says: push it with the annotations.
	app := mutate.Annotations(derived(base), map[string]string{
		build.AnnotationBaseName: host + "/base:1", build.AnnotationBaseDigest: bd.String(),
	}).(v1.Image)
	push("app:v1", app)
	waitIdle()
	if out := kiln("candidates"); strings.Contains(out, "app:v1") {
		t.Errorf("an annotated image is still a candidate:\n%s", out)
	}
	newBase, _ := random.Image(256, 2)
	push("base:1", newBase)
	waitIdle()
	out = kiln("ls")
	if !strings.Contains(out, "auto:app:v1") || !strings.Contains(out, "succeeded") || !strings.Contains(out, "rebase") {
		t.Errorf("builds ls:\n%s", out)
	}
	if out := kiln("ls", "--rule", "auto:app:v1"); strings.Count(out, "auto:app:v1") != 1 {
		t.Errorf("builds ls --rule:\n%s", out)
	}
	if id := strings.TrimSpace(kiln("trigger", "auto:app:v1")); id == "" {
		t.Error("trigger printed no build id")
	}
	waitIdle()
}

func mustLayer(t *testing.T) v1.Layer {
	t.Helper()
	l, err := random.Layer(128, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if err != nil {
		t.Fatal(err)
	}
	return l
}
