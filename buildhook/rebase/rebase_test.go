package rebase

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"kiln/buildhook/build"
	"kiln/internal/imagetest"
)

func TestRebase(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
	oldBase := imagetest.Base(t, imagetest.BaseOptions{Version: "3.8.1"})
	oldDigest := imagetest.Push(t, host, "python:3.8", oldBase)
	job, built := pushDerived(t, host, oldDigest)
	derived := imagetest.Pull(t, host, "app@"+built.String())

	newBase := patchedBase(t, "amd64")
	newDigest := imagetest.Push(t, host, "python:3.8", newBase)
	job.ID = "second"
	job.Staging = build.ImageRef{Repo: "app", Tag: "kiln-build-second"}
	job.Trigger = build.Trigger{Ref: build.ImageRef{Repo: "python", Tag: "3.8"}, Digest: newDigest, Reason: "push"}

	d, log := imagetest.Build(t, &Builder{}, job)
	if !strings.Contains(log, "2 old base layers -> 2 new base layers, 2 own layers kept") {
		t.Errorf("log:\n%s", log)
	}
	img := imagetest.Pull(t, host, "app:kiln-build-second")
	if h, _ := img.Digest(); h.String() != d.String() {
		t.Errorf("staging has %s, Build returned %s", h, d)
	}

	// Layers: the new base's, then the image's own.
	own := imagetest.Layers(t, derived)[2:]
	want := append(imagetest.LayerDigests(t, imagetest.Layers(t, newBase)), imagetest.LayerDigests(t, own)...)
	if got := imagetest.LayerDigests(t, imagetest.Layers(t, img)); !slices.Equal(got, want) {
		t.Errorf("layers\n%v\nwant\n%v", got, want)
	}

	cf, _ := img.ConfigFile()
	newCf, _ := newBase.ConfigFile()
	derivedCf, _ := derived.ConfigFile()
	c := cf.Config
	wantEnv := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "PYTHON_VERSION=3.8.2", "LANG=C.UTF-8", "APP_HOME=/app", "PYTHONUNBUFFERED=1", "NEW_VAR=1"}
	if !slices.Equal(c.Env, wantEnv) {
		t.Errorf("Env %q, want %q", c.Env, wantEnv)
	}
	if c.Labels["maintainer"] != "new python team" || c.Labels["org.example.app"] != "demo" {
		t.Errorf("Labels %v", c.Labels)
	}
	if c.User != "1000" || c.WorkingDir != "/app" || !slices.Equal(c.Entrypoint, []string{"python3", "/app/app.py"}) || c.Cmd != nil {
		t.Errorf("User %q WorkingDir %q Entrypoint %q Cmd %q", c.User, c.WorkingDir, c.Entrypoint, c.Cmd)
	}
	if !cf.Created.Equal(derivedCf.Created.Time) {
		t.Errorf("created %v, want the image's %v", cf.Created, derivedCf.Created)
	}
	// History: the new base's, then the image's own.
	wantHist := append(slices.Clone(newCf.History), derivedCf.History[len(newCf.History):]...)
	if len(cf.History) != len(wantHist) {
		t.Fatalf("%d history entries, want %d", len(cf.History), len(wantHist))
	}
	for i := range wantHist {
		if cf.History[i].CreatedBy != wantHist[i].CreatedBy || cf.History[i].EmptyLayer != wantHist[i].EmptyLayer {
			t.Errorf("history %d: %+v, want %+v", i, cf.History[i], wantHist[i])
		}
	}
	m, _ := img.Manifest()
	if m.Annotations[build.AnnotationBaseDigest] != newDigest.String() {
		t.Errorf("base digest annotation %q", m.Annotations[build.AnnotationBaseDigest])
	}

	// Rebasing again onto the same base is a no-op on layers.
	job.Staging.Tag = "kiln-build-third"
	if _, err := (&Builder{}).Build(context.Background(), job, io.Discard); err != nil {
		t.Fatal(err)
	}
}

func TestMergeConfig(t *testing.T) {
	t.Parallel()
	old := v1.Config{
		Env:        []string{"PATH=/bin", "V=1", "KEEP=base"},
		User:       "root",
		WorkingDir: "/",
		Cmd:        []string{"python3"},
		Labels:     map[string]string{"a": "1", "b": "1"},
		ExposedPorts: map[string]struct{}{
			"80/tcp": {}, "81/tcp": {},
		},
		StopSignal: "SIGTERM",
	}
	nw := v1.Config{
		Env:          []string{"PATH=/usr/bin:/bin", "V=2", "KEEP=base2", "ADDED=yes"},
		User:         "nobody",
		WorkingDir:   "/srv",
		Cmd:          []string{"python3", "-q"},
		Labels:       map[string]string{"a": "2", "b": "2", "c": "2"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "90/tcp": {}},
		StopSignal:   "SIGQUIT",
	}
	img := v1.Config{
		Env:          []string{"PATH=/bin", "V=1", "KEEP=mine", "APP=1"},
		User:         "root",
		WorkingDir:   "/app",
		Cmd:          []string{"python3"},
		Labels:       map[string]string{"a": "1", "b": "mine", "own": "x"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "81/tcp": {}, "8080/tcp": {}},
		StopSignal:   "SIGTERM",
	}
	got := mergeConfig(img, old, nw)
	if want := []string{"PATH=/usr/bin:/bin", "V=2", "KEEP=mine", "APP=1", "ADDED=yes"}; !slices.Equal(got.Env, want) {
		t.Errorf("Env %q, want %q", got.Env, want)
	}
	if got.User != "nobody" || got.WorkingDir != "/app" || got.StopSignal != "SIGQUIT" || !slices.Equal(got.Cmd, []string{"python3", "-q"}) {
		t.Errorf("User %q WorkingDir %q StopSignal %q Cmd %q", got.User, got.WorkingDir, got.StopSignal, got.Cmd)
	}
	if fmt.Sprint(got.Labels) != "map[a:2 b:mine c:2 own:x]" {
		t.Errorf("Labels %v", got.Labels)
	}
	if fmt.Sprint(got.ExposedPorts) != "map[80/tcp:{} 8080/tcp:{} 90/tcp:{}]" {
		t.Errorf("ExposedPorts %v", got.ExposedPorts)
	}
	// An ENTRYPOINT of the image's own keeps its (empty) CMD.
	img.Entrypoint, img.Cmd = []string{"/run"}, nil
	old.Cmd = nil
	if got := mergeConfig(img, old, nw); got.Cmd != nil || !slices.Equal(got.Entrypoint, []string{"/run"}) {
		t.Errorf("Entrypoint %q Cmd %q", got.Entrypoint, got.Cmd)
	}
}

func TestRebaseMultiPlatform(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
	oldAmd, oldArm := imagetest.Base(t, imagetest.BaseOptions{Arch: "amd64", Version: "3.8.1"}), imagetest.Base(t, imagetest.BaseOptions{Arch: "arm64", Version: "3.8.1"})
	oldDigest := imagetest.Push(t, host, "python:3.8", imagetest.Index(t, oldAmd, oldArm))
	job, built := pushDerived(t, host, oldDigest)

	newAmd, newArm := patchedBase(t, "amd64"), patchedBase(t, "arm64")
	newIdx := imagetest.Index(t, newArm, newAmd) // other order: matched by platform
	newDigest := imagetest.Push(t, host, "python:3.8", newIdx)
	job.Staging.Tag = "kiln-build-second"
	job.Trigger.Digest = newDigest

	d, _ := imagetest.Build(t, &Builder{}, job)
	idx, err := imagetest.Get(t, host, "app@"+d.String()).ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatal(err)
	}
	oldIdx, _ := imagetest.Get(t, host, "app@"+built.String()).ImageIndex()
	im, _ := idx.IndexManifest()
	oim, _ := oldIdx.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("%d manifests", len(im.Manifests))
	}
	for i, m := range im.Manifests {
		img, _ := idx.Image(m.Digest)
		old, _ := oldIdx.Image(oim.Manifests[i].Digest)
		base := map[string]v1.Image{"amd64": newAmd, "arm64": newArm}[m.Platform.Architecture]
		want := append(imagetest.LayerDigests(t, imagetest.Layers(t, base)), imagetest.LayerDigests(t, imagetest.Layers(t, old)[2:])...)
		if got := imagetest.LayerDigests(t, imagetest.Layers(t, img)); !slices.Equal(got, want) {
			t.Errorf("%s: layers %v, want %v", m.Platform.Architecture, got, want)
		}
		bd, _ := base.Digest()
		mf, _ := img.Manifest()
		if mf.Annotations[build.AnnotationBaseDigest] != bd.String() {
			t.Errorf("%s: base digest %q, want %s", m.Platform.Architecture, mf.Annotations[build.AnnotationBaseDigest], bd)
		}
		cf, _ := img.ConfigFile()
		if !slices.Contains(cf.Config.Env, "PYTHON_VERSION=3.8.2") || cf.Architecture != m.Platform.Architecture {
			t.Errorf("%s: Env %q arch %s", m.Platform.Architecture, cf.Config.Env, cf.Architecture)
		}
	}
}

func TestNotApplicable(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
	oldDigest := imagetest.Push(t, host, "python:3.8", imagetest.Base(t, imagetest.BaseOptions{Version: "3.8.1"}))
	newDigest := imagetest.Push(t, host, "python:3.8", patchedBase(t, "amd64"))
	trigger := build.Trigger{Ref: build.ImageRef{Repo: "python", Tag: "3.8"}, Digest: newDigest, Reason: "push"}
	job := func(tag string) *build.Job {
		j := appJob(host, "x", newDigest)
		j.Rule.Tags = []build.ImageRef{{Repo: "other", Tag: tag}}
		j.Trigger = trigger
		return j
	}
	annotated := func(img v1.Image) v1.Image {
		return mutate.Annotations(img, map[string]string{
			build.AnnotationBaseName:   host + "/python:3.8",
			build.AnnotationBaseDigest: oldDigest.String(),
		}).(v1.Image)
	}
	rnd, err := random.Image(100, 3)
	if err != nil {
		t.Fatal(err)
	}
	imagetest.Push(t, host, "other:foreign", annotated(rnd))
	imagetest.Push(t, host, "other:plain", rnd)

	for _, tc := range []struct{ tag, want string }{
		{"foreign", "layer 0 of the image is"},
		{"plain", "has no org.opencontainers.image.base.name"},
		{"missing", "other:missing does not exist yet"},
	} {
		_, err := (&Builder{}).Build(context.Background(), job(tc.tag), io.Discard)
		if !errors.Is(err, ErrNotApplicable) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrNotApplicable with %q", tc.tag, err, tc.want)
		}
	}
	// A trigger that is not the final base.
	j := job("foreign")
	j.Trigger.Ref = build.ImageRef{Repo: "golang", Tag: "1.22"}
	if _, err := (&Builder{}).Build(context.Background(), j, io.Discard); !errors.Is(err, ErrNotApplicable) {
		t.Errorf("other trigger: err = %v", err)
	}
}

// BenchmarkRebase measures a rebase from the trigger to the pushed
// staging image: the derived image and both bases are in the registry.
func BenchmarkRebase(b *testing.B) {
	host := imagetest.Registry(b)
	oldDigest := imagetest.Push(b, host, "python:3.8", imagetest.BenchBase(b, 1))
	job, _ := pushDerived(b, host, oldDigest)
	newDigest := imagetest.Push(b, host, "python:3.8", imagetest.BenchBase(b, 2))
	job.Trigger.Digest = newDigest
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		job.Staging.Tag = fmt.Sprintf("kiln-build-bench%d", i)
		if _, err := (&Builder{}).Build(context.Background(), job, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
