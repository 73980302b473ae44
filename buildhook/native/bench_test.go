package native

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"kiln/buildhook/build"
	"kiln/internal/imagetest"
)

// BenchmarkNativeBuild measures a build from the trigger to the pushed
// staging image, on a python-like base of ~2100 files in 5 layers (~9 MB),
// with a 200-file context: cold, a new Builder each time (the base
// filesystem is read again); warm, one Builder (its layer headers
// cached, as when a base moves under many rules).
func BenchmarkBuild(b *testing.B) {
	host := imagetest.Registry(b)
	base := imagetest.BenchBase(b, 1)
	bd := imagetest.Push(b, host, "python:3.8", base)
	files := map[string]string{"Dockerfile": benchDockerfile, ".dockerignore": "src/secret.txt\n"}
	for i := range 200 {
		files[fmt.Sprintf("src/pkg%d/mod%d.py", i%10, i)] = strings.Repeat("x = 1\n", 200)
	}
	files["run.sh"], files["config.yml"], files["tool"] = "#!/bin/sh\n", "a: 1\n", "t"
	dir := imagetest.ContextDir(b, files)
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
				job := imagetest.Job(host, dir, fmt.Sprintf("bench-%s-%d", bc.name, i), build.ImageRef{Repo: "python", Tag: "3.8"}, bd)
				if _, err := bc.builder().Build(context.Background(), job, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
