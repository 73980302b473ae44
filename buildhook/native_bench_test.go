package buildhook

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
				job := nbtJob(host, dir, fmt.Sprintf("bench-%s-%d", bc.name, i), build.ImageRef{Repo: "python", Tag: "3.8"}, bd)
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
