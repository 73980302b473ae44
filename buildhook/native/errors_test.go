package native

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"kiln/buildhook/build"
	"kiln/internal/imagetest"
)

func TestRunFails(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
	dir := imagetest.ContextDir(t, map[string]string{
		"Dockerfile": "ARG REGISTRY\nFROM $REGISTRY/python:3.8\nCOPY a /a\nRUN pip install flask \\\n  gunicorn\nCMD [\"x\"]\n",
		"a":          "a",
	})
	job := imagetest.Job(host, dir, "r1", build.ImageRef{Repo: "python", Tag: "3.8"}, "")
	_, err := (&Builder{}).Build(context.Background(), job, io.Discard)
	want := "Dockerfile line 4: RUN needs a container; use builder docker or buildah"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
	bd := imagetest.Push(t, host, "python:3.8", imagetest.Base(t, imagetest.BaseOptions{Version: "3.8.1"}))
	var tgz bytes.Buffer
	tw := tar.NewWriter(&tgz)
	tw.WriteHeader(&tar.Header{Name: "x", Size: 1, Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	for _, tc := range []struct {
		name, dockerfile, want string
	}{
		{"missing", "COPY nothere /x", "Dockerfile line 3: COPY nothere: not found in build context"},
		{"ignored", "COPY secret.txt /x", "Dockerfile line 3: COPY secret.txt: not found in build context (or excluded by .dockerignore)"},
		{"archive", "ADD files.tar /x/", "Dockerfile line 3: ADD files.tar: a local archive is unpacked by ADD"},
		{"url", "ADD https://example.com/x /x", "Dockerfile line 3: ADD https://example.com/x: remote sources are not supported"},
		{"multi", "COPY a b /x", "Dockerfile line 3: COPY with more than one source file needs a directory destination"},
		{"chown", "COPY --chown=nobody a /x", `Dockerfile line 3: --chown=nobody: user "nobody" not found in /etc/passwd`},
		{"stage", "COPY --from=5 a /x", "Dockerfile line 3: COPY --from=5: no such earlier stage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := imagetest.ContextDir(t, map[string]string{
				"Dockerfile":    "ARG REGISTRY\nFROM $REGISTRY/python:3.8\n" + tc.dockerfile + "\n",
				".dockerignore": "secret.txt",
				"secret.txt":    "s", "a": "a", "b": "b", "files.tar": tgz.String(),
			})
			_, err := (&Builder{}).Build(context.Background(), imagetest.Job(host, dir, "e1", build.ImageRef{Repo: "python", Tag: "3.8"}, bd), io.Discard)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// ADD of a plain file works.
	dir := imagetest.ContextDir(t, map[string]string{"Dockerfile": "ARG REGISTRY\nFROM $REGISTRY/python:3.8\nADD a /x\n", "a": "a"})
	imagetest.Build(t, &Builder{}, imagetest.Job(host, dir, "e2", build.ImageRef{Repo: "python", Tag: "3.8"}, bd))
}
