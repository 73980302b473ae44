package buildhook

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/buildhook/native"
	"kiln/internal/imagetest"
)

// appDockerfile builds a small app on python:3.8 in this registry.
const appDockerfile = `ARG REGISTRY
FROM ${REGISTRY}/python:3.8
ENV APP_HOME=/app PYTHONUNBUFFERED=1
LABEL org.example.app=demo
WORKDIR /app
COPY app.py /app/
USER 1000
ENTRYPOINT ["python3", "/app/app.py"]
`

func pvtStagingGone(t *testing.T, host string, job *build.Job) {
	t.Helper()
	ref, _ := name.NewTag(host+"/"+job.Staging.String(), name.Insecure)
	if _, err := remote.Head(ref); err == nil || !build.IsNotFound(err) {
		t.Errorf("staging tag %s still there (err %v)", job.Staging, err)
	}
}

// testInputs stands for a build's inputs digest.
var testInputs = digest.FromString("the build's inputs")

func pvtCheckCommon(t *testing.T, ann map[string]string, host string, job *build.Job) {
	t.Helper()
	if ann[build.AnnotationBaseName] != host+"/python:3.8" {
		t.Errorf("base.name %q", ann[build.AnnotationBaseName])
	}
	if ann[build.AnnotationBuildInputs] != testInputs.String() {
		t.Errorf("build.inputs %q, want %s", ann[build.AnnotationBuildInputs], testInputs)
	}
	for _, k := range []string{"dev.kiln.build.id", "dev.kiln.build.trigger"} {
		if v, ok := ann[k]; ok {
			t.Errorf("%s %q: a build's id or trigger would make each build a new digest", k, v)
		}
	}
	// The native builder's images are created when their base was.
	created, err := time.Parse(time.RFC3339, ann[build.AnnotationCreated])
	if err != nil || !strings.HasSuffix(ann[build.AnnotationCreated], "Z") || time.Since(created) < time.Hour {
		t.Errorf("created %q (%v): want the image config's, RFC 3339 UTC", ann[build.AnnotationCreated], err)
	}
}

func TestFinalizeImage(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
	bd := imagetest.Push(t, host, "python:3.8", imagetest.Base(t, imagetest.BaseOptions{Version: "3.8.1"}))
	dir := imagetest.ContextDir(t, map[string]string{"Dockerfile": appDockerfile, "app.py": "x"})
	job := imagetest.Job(host, dir, "f1", build.ImageRef{Repo: "python", Tag: "3.8"}, bd)
	staged, _ := imagetest.Build(t, &native.Builder{}, job)

	var log bytes.Buffer
	final, err := Finalize(context.Background(), job, nil, bd, testInputs, &log)
	if err != nil {
		t.Fatal(err)
	}
	// The same staged image finalized again is the same image.
	imagetest.Build(t, &native.Builder{}, job)
	if again, err := Finalize(context.Background(), job, nil, bd, testInputs, nil); err != nil || again != final {
		t.Errorf("finalizing the same build again gave %s (%v), want %s", again, err, final)
	}
	if final == staged {
		t.Error("the annotations did not change the digest")
	}
	for _, tag := range []string{"app:v1", "app:latest"} {
		if d := imagetest.Get(t, host, tag).Digest.String(); d != final.String() {
			t.Errorf("%s is %s, want %s", tag, d, final)
		}
		if !strings.Contains(log.String(), "tagged "+tag+" -> "+final.String()) {
			t.Errorf("log lacks the tag of %s:\n%s", tag, log.String())
		}
	}
	pvtStagingGone(t, host, job)
	img := imagetest.Pull(t, host, "app:v1")
	m, _ := img.Manifest()
	pvtCheckCommon(t, m.Annotations, host, job)
	if m.Annotations[build.AnnotationBaseDigest] != bd.String() {
		t.Errorf("base.digest %q, want %s", m.Annotations[build.AnnotationBaseDigest], bd)
	}
	// The content is the staged image's.
	stagedImg := imagetest.Pull(t, host, "app@"+staged.String())
	if a, b := imagetest.LayerDigests(t, imagetest.Layers(t, img)), imagetest.LayerDigests(t, imagetest.Layers(t, stagedImg)); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Error("layers changed")
	}
}

func TestFinalizeIndex(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
	amd := imagetest.Base(t, imagetest.BaseOptions{Arch: "amd64", Version: "3.8.1"})
	arm := imagetest.Base(t, imagetest.BaseOptions{Arch: "arm64", Version: "3.8.1"})
	bd := imagetest.Push(t, host, "python:3.8", imagetest.Index(t, amd, arm))
	dir := imagetest.ContextDir(t, map[string]string{"Dockerfile": appDockerfile, "app.py": "x"})
	job := imagetest.Job(host, dir, "f2", build.ImageRef{Repo: "python", Tag: "3.8"}, bd)
	imagetest.Build(t, &native.Builder{}, job)

	// Like a buildx push, add an attestation naming the arm64 image.
	stagedIdx, err := imagetest.Get(t, host, job.Staging.String()).ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	sim, _ := stagedIdx.IndexManifest()
	var children []v1.Image
	for _, m := range sim.Manifests {
		img, _ := stagedIdx.Image(m.Digest)
		children = append(children, img)
	}
	withAtt := imagetest.Index(t, children[1], children[0]) // attestation of children[1] (arm64)
	imagetest.Push(t, host, job.Staging.String(), withAtt)

	final, err := Finalize(context.Background(), job, nil, bd, testInputs, nil)
	if err != nil {
		t.Fatal(err)
	}
	pvtStagingGone(t, host, job)
	for _, tag := range []string{"app:v1", "app:latest"} {
		if d := imagetest.Get(t, host, tag).Digest.String(); d != final.String() {
			t.Errorf("%s is %s, want %s", tag, d, final)
		}
	}
	desc := imagetest.Get(t, host, "app:v1")
	idx, _ := desc.ImageIndex()
	if err := validate.Index(idx); err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	pvtCheckCommon(t, im.Annotations, host, job)
	if im.Annotations[build.AnnotationBaseDigest] != bd.String() {
		t.Errorf("index base.digest %q, want the base index %s", im.Annotations[build.AnnotationBaseDigest], bd)
	}
	if len(im.Manifests) != 3 {
		t.Fatalf("%d manifests, want 3", len(im.Manifests))
	}
	byArch := map[string]string{}
	for _, m := range im.Manifests {
		if m.Platform.OS == "unknown" {
			continue
		}
		img, _ := idx.Image(m.Digest)
		mf, _ := img.Manifest()
		pvtCheckCommon(t, mf.Annotations, host, job)
		base := map[string]v1.Image{"amd64": amd, "arm64": arm}[m.Platform.Architecture]
		want, _ := base.Digest()
		if mf.Annotations[build.AnnotationBaseDigest] != want.String() {
			t.Errorf("%s: base.digest %q, want its platform's %s", m.Platform.Architecture, mf.Annotations[build.AnnotationBaseDigest], want)
		}
		byArch[m.Platform.Architecture] = m.Digest.String()
	}
	att := im.Manifests[2]
	if att.Annotations[attestationRefDigest] != byArch["arm64"] {
		t.Errorf("attestation names %q, want the annotated arm64 image %s", att.Annotations[attestationRefDigest], byArch["arm64"])
	}
}
