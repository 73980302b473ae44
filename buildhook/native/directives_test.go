package native

import (
	"context"
	"fmt"
	"io"
	"testing"

	"kiln/buildhook/build"
	"kiln/internal/imagetest"
)

// A "# check=" comment is a parser directive only on the first lines;
// anywhere else it is a comment, and the native builder must read it as
// one, not panic (BuildKit's parser with no linter did).
func TestParserDirectives(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
	bd := imagetest.Push(t, host, "python:3.8", imagetest.Base(t, imagetest.BaseOptions{Version: "3.8.1"}))
	for name, dockerfile := range map[string]string{
		"check in the middle": "ARG REGISTRY\nFROM $REGISTRY/python:3.8\n# check=skip=JSONArgsRecommended\nCOPY a /a\nCMD python a\n",
		"directives on top":   "# syntax=docker/dockerfile:1\n# check=skip=all;error=true\n# escape=`\nARG REGISTRY\nFROM $REGISTRY/python:3.8\nCOPY a /a\n# check=error=true\nCMD python a\n",
		"check after a check": "# check=skip=all\nARG REGISTRY\nFROM $REGISTRY/python:3.8\n# check=skip=StageNameCasing\nCOPY a /a\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := imagetest.ContextDir(t, map[string]string{"Dockerfile": dockerfile, "a": "a"})
			job := imagetest.Job(host, dir, "d1", build.ImageRef{Repo: "python", Tag: "3.8"}, bd)
			if err := buildNoPanic(&Builder{}, job); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// buildNoPanic builds job, turning a panic into an error as the queue
// does ("build panicked").
func buildNoPanic(b build.Builder, job *build.Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("build panicked: %v", r)
		}
	}()
	_, err = b.Build(context.Background(), job, io.Discard)
	return err
}
