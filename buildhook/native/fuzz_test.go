package native

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"kiln/buildhook/build"
	"kiln/internal/imagetest"
)

// FuzzBuild builds what the fuzzer makes of the front end's corpus
// (../dockerfile/testdata/corpus, which FuzzParse reads too) with the
// native builder, against an in-process registry holding python:3.8: no
// Dockerfile may make it panic. Other registries are refused before any
// connection, so no input reaches the network.
func FuzzBuild(f *testing.F) {
	paths, err := filepath.Glob("../dockerfile/testdata/corpus/*.Dockerfile")
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed corpus: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "TAG", "3.8")
	}
	host := imagetest.Registry(f)
	bd := imagetest.Push(f, host, "python:3.8", imagetest.Base(f, imagetest.BaseOptions{Version: "3.8.1"}))
	base := build.ImageRef{Repo: "python", Tag: "3.8"}
	f.Fuzz(func(t *testing.T, dockerfile []byte, k, v string) {
		dir := imagetest.ContextDir(t, map[string]string{"Dockerfile": string(dockerfile), "a": "a", "dir/b": "b"})
		job := imagetest.Job(host, dir, "f1", base, bd)
		job.Rule.Args[k] = v
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("build panicked on %q: %v", dockerfile, r)
				}
			}()
			d, err := (&Builder{}).Build(ctx, job, io.Discard)
			if err == nil && d == "" {
				t.Fatal("no digest and no error")
			}
		}()
	})
}
