package native

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"kiln/buildhook/build"
)

// BenchmarkNativeBuild measures a build from the trigger to the pushed
// staging image, on a python-like base of ~2100 files in 5 layers (~9 MB),
// with a 200-file context: cold, a new Builder each time (the base
// filesystem is read again); warm, one Builder (its layer headers
// cached, as when a base moves under many rules).
func BenchmarkBuild(b *testing.B) {
	host := startRegistry(b)
	base := benchBase(b, 1)
	bd := push(b, host, "python:3.8", base)
	files := map[string]string{"Dockerfile": benchDockerfile, ".dockerignore": "src/secret.txt\n"}
	for i := range 200 {
		files[fmt.Sprintf("src/pkg%d/mod%d.py", i%10, i)] = strings.Repeat("x = 1\n", 200)
	}
	files["run.sh"], files["config.yml"], files["tool"] = "#!/bin/sh\n", "a: 1\n", "t"
	dir := contextDir(b, files)
	warm := &Builder{}
	for _, bc := range []struct {
		name    string
		builder func() *Builder
	}{
		{"cold", func() *Builder { return &Builder{} }},
		{"warm", func() *Builder { return warm }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				job := appJob(host, dir, fmt.Sprintf("bench-%s-%d", bc.name, i), build.ImageRef{Repo: "python", Tag: "3.8"}, bd)
				if _, err := bc.builder().Build(context.Background(), job, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchBase is a base with three layers, ~2000 files, ~8 MB.
func benchBase(b testing.TB, seed int64) v1.Image {
	rng := rand.New(rand.NewSource(seed))
	img := baseImage(b, baseOpts{version: fmt.Sprintf("3.8.%d", seed)})
	var layers []v1.Layer
	for l := range 3 {
		files := map[string]layerFile{}
		for i := range 700 {
			buf := make([]byte, 4096)
			rng.Read(buf)
			files[fmt.Sprintf("usr/lib/python3.8/l%d/d%d/f%d.py", l, i%20, i)] = layerFile{content: string(buf)}
		}
		layers = append(layers, layerOf(b, files))
	}
	out, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		b.Fatal(err)
	}
	return out
}
