package imagetest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
)

// ContextDir writes a build context of files (slash paths to contents) in
// a directory removed when the test ends.
func ContextDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, c := range files {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Job is the job id of a native build of the rule app (tags app:v1 and
// app:latest) from the context dir on base, triggered by a push of base at
// baseDigest to the registry at host.
func Job(host, dir, id string, base build.ImageRef, baseDigest digest.Digest) *build.Job {
	return &build.Job{
		ID: id,
		Rule: &build.Rule{
			Name: "app", Context: dir, Dockerfile: "Dockerfile",
			Tags:     []build.ImageRef{{Repo: "app", Tag: "v1"}, {Repo: "app", Tag: "latest"}},
			Args:     map[string]string{"REGISTRY": host},
			Builder:  "native",
			Strategy: "build",
			Bases:    []build.ImageRef{base}, FinalBase: &base,
		},
		Trigger:  build.Trigger{Ref: base, Digest: baseDigest, Reason: "push"},
		Registry: host,
		Staging:  build.ImageRef{Repo: "app", Tag: "kiln-build-" + id},
	}
}

// Build runs b on job, failing the test if it fails, and returns the
// digest it pushed and its log.
func Build(t testing.TB, b build.Builder, job *build.Job) (digest.Digest, string) {
	t.Helper()
	var log bytes.Buffer
	d, err := b.Build(context.Background(), job, &log)
	if err != nil {
		t.Fatalf("build: %v\nlog:\n%s", err, log.String())
	}
	return d, log.String()
}
