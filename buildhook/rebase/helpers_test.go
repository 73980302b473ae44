package rebase

import (
	"maps"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/internal/imagetest"
)

// patchedBase is the python:3.8 a security fix moves to: other files, an added
// ENV, a changed label and CMD.
func patchedBase(t testing.TB, arch string) v1.Image {
	return imagetest.Base(t, imagetest.BaseOptions{
		Arch: arch, Version: "3.8.2",
		Extra:  map[string]string{"usr/local/lib/security-fix": "patched"},
		Env:    []string{"NEW_VAR=1"},
		Labels: map[string]string{"maintainer": "new python team", "org.example.app": "base's"},
		Cmd:    []string{"python3", "-q"},
	})
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
		mutate.Addendum{Layer: imagetest.Layer(t, map[string]imagetest.File{"app/.keep": {}}), History: v1.History{CreatedBy: "WORKDIR /app"}},
		mutate.Addendum{Layer: imagetest.Layer(t, map[string]imagetest.File{"app/app.py": {Content: "print('app')\n"}}), History: v1.History{CreatedBy: "COPY app.py /app/"}},
		mutate.Addendum{History: v1.History{CreatedBy: "USER 1000", EmptyLayer: true}},
		mutate.Addendum{History: v1.History{CreatedBy: `ENTRYPOINT ["python3", "/app/app.py"]`, EmptyLayer: true}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return imagetest.Configure(t, img, func(cf *v1.ConfigFile) {
		cf.Created = v1.Time{Time: time.Unix(3000, 0).UTC()}
		c := &cf.Config
		c.Env = append(c.Env, "APP_HOME=/app", "PYTHONUNBUFFERED=1")
		c.Labels = maps.Clone(c.Labels)
		c.Labels["org.example.app"] = "demo"
		c.WorkingDir, c.User = "/app", "1000"
		c.Entrypoint, c.Cmd = []string{"python3", "/app/app.py"}, nil // ENTRYPOINT resets CMD
	})
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
	desc := imagetest.Get(t, host, "python@"+bd.String())
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
		out := mutate.AppendManifests(imagetest.EmptyIndex(), adds...)
		app = mutate.Annotations(out, annotate(nil, bd.String()))
	}
	built := imagetest.Push(t, host, "app:v1", app)
	return appJob(host, "first", bd), built
}

// appJob is a job of the rule app:v1 on python:3.8, triggered by its move
// to bd: imagetest's build job with no context, builder or strategy but
// rebase.
func appJob(host, id string, bd digest.Digest) *build.Job {
	j := imagetest.Job(host, "", id, build.ImageRef{Repo: "python", Tag: "3.8"}, bd)
	j.Rule.Builder, j.Rule.Strategy = "", "rebase"
	return j
}
