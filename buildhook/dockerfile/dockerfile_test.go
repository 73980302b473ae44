package dockerfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		dockerfile string
		args       map[string]string
		stages     []Stage // Line is compared too
		copyFrom   []string
		needsExec  []string
	}{
		{
			name:       "single stage",
			dockerfile: "FROM localhost:5000/python:3.8\nCOPY app.py /app/\n",
			stages:     []Stage{{BaseName: "localhost:5000/python:3.8", Line: 1}},
		},
		{
			name: "multi-stage with names and FROM stage",
			dockerfile: `FROM localhost:5000/golang:1.22 AS Build
RUN go build -o /app .

FROM build AS test
RUN go test ./...

FROM localhost:5000/alpine:3.20
COPY --from=build /app /app
`,
			stages: []Stage{
				{Name: "build", BaseName: "localhost:5000/golang:1.22", Line: 1},
				{Name: "test", BaseName: "build", FromStage: true, Line: 4},
				{BaseName: "localhost:5000/alpine:3.20", Line: 7},
			},
			needsExec: []string{"line 2: RUN go build -o /app .", "line 5: RUN go test ./..."},
		},
		{
			name: "meta ARG defaults",
			dockerfile: `ARG REGISTRY=localhost:5000
ARG TAG=3.8
FROM ${REGISTRY}/python:${TAG}
`,
			stages: []Stage{{BaseName: "localhost:5000/python:3.8", Line: 3}},
		},
		{
			name: "meta ARG overridden by build args",
			dockerfile: `ARG REGISTRY=localhost:5000
ARG TAG=3.8
FROM ${REGISTRY}/python:$TAG
`,
			args:   map[string]string{"TAG": "3.12", "UNUSED": "x"},
			stages: []Stage{{BaseName: "localhost:5000/python:3.12", Line: 3}},
		},
		{
			name: "meta ARG default uses an earlier one",
			dockerfile: `ARG TAG=3.8
ARG BASE=localhost:5000/python:${TAG}-slim
FROM $BASE
`,
			stages: []Stage{{BaseName: "localhost:5000/python:3.8-slim", Line: 3}},
		},
		{
			name: "meta ARG without default set by build arg",
			dockerfile: `ARG TAG
FROM localhost:5000/python:${TAG:-3.8}
`,
			args:   map[string]string{"TAG": "3.11"},
			stages: []Stage{{BaseName: "localhost:5000/python:3.11", Line: 2}},
		},
		{
			name: "${VAR:-default} with VAR unset",
			dockerfile: `ARG TAG
FROM localhost:5000/python:${TAG:-3.8}
`,
			stages: []Stage{{BaseName: "localhost:5000/python:3.8", Line: 2}},
		},
		{
			name:       "build arg not declared as meta ARG is not seen by FROM",
			dockerfile: "FROM localhost:5000/python:${TAG:-3.8}\n",
			args:       map[string]string{"TAG": "3.12"},
			stages:     []Stage{{BaseName: "localhost:5000/python:3.8", Line: 1}},
		},
		{
			name: "ARG after FROM does not change later FROMs",
			dockerfile: `ARG TAG=3.8
FROM localhost:5000/python:$TAG AS a
ARG TAG=9
FROM localhost:5000/python:$TAG
`,
			stages: []Stage{
				{Name: "a", BaseName: "localhost:5000/python:3.8", Line: 2},
				{BaseName: "localhost:5000/python:3.8", Line: 4},
			},
		},
		{
			name: "platform kept when it uses build platform args",
			dockerfile: `FROM --platform=$BUILDPLATFORM localhost:5000/golang:1.22 AS build
FROM --platform=${TARGETPLATFORM} localhost:5000/alpine AS t
FROM --platform=linux/arm64 localhost:5000/alpine AS fixed
ARG P=linux/amd64
`,
			stages: []Stage{
				{Name: "build", BaseName: "localhost:5000/golang:1.22", Platform: "$BUILDPLATFORM", Line: 1},
				{Name: "t", BaseName: "localhost:5000/alpine", Platform: "${TARGETPLATFORM}", Line: 2},
				{Name: "fixed", BaseName: "localhost:5000/alpine", Platform: "linux/arm64", Line: 3},
			},
		},
		{
			name: "platform expanded from meta ARG",
			dockerfile: `ARG PLAT=linux/arm64
FROM --platform=$PLAT localhost:5000/alpine
`,
			stages: []Stage{{BaseName: "localhost:5000/alpine", Platform: "linux/arm64", Line: 2}},
		},
		{
			name: "COPY --from image, stage name and stage index",
			dockerfile: `FROM localhost:5000/golang:1.22 AS build
FROM scratch
COPY --from=build /app /app
COPY --from=0 /etc/passwd /etc/passwd
COPY --from=localhost:5000/certs:latest /certs /certs
COPY --from=BUILD /x /x
COPY --from=localhost:5000/certs:latest /more /more
COPY --from=busybox /bin/sh /bin/sh
`,
			stages: []Stage{
				{Name: "build", BaseName: "localhost:5000/golang:1.22", Line: 1},
				{BaseName: "scratch", Line: 2},
			},
			copyFrom: []string{"localhost:5000/certs:latest", "busybox"},
		},
		{
			name: "RUN --mount from image",
			dockerfile: `FROM localhost:5000/alpine AS base
RUN --mount=type=bind,from=localhost:5000/tools:1,target=/t \
    --mount=type=bind,from=base,target=/b /t/run
`,
			stages:    []Stage{{Name: "base", BaseName: "localhost:5000/alpine", Line: 1}},
			copyFrom:  []string{"localhost:5000/tools:1"},
			needsExec: []string{"line 2: RUN --mount=type=bind,from=localhost:5000/tools:1,target=/t     --mount=type=bind,from=base,target=/b /t/run"},
		},
		{
			name: "flask app",
			dockerfile: `# syntax=docker/dockerfile:1
FROM localhost:5000/python:3.8

WORKDIR /app
RUN pip install flask
COPY . .
CMD ["python", "app.py"]
`,
			stages:    []Stage{{BaseName: "localhost:5000/python:3.8", Line: 2}},
			needsExec: []string{"line 5: RUN pip install flask"},
		},
		{
			name: "scratch, lowercase keywords, stage name lowercased",
			dockerfile: `from scratch as Rootfs
add rootfs.tar /
from rootfs
`,
			stages: []Stage{
				{Name: "rootfs", BaseName: "scratch", Line: 1},
				{BaseName: "rootfs", FromStage: true, Line: 3},
			},
		},
		{
			name: "a stage is only a stage after it is defined",
			dockerfile: `FROM localhost:5000/base AS base
FROM base AS b2
`,
			stages: []Stage{
				{Name: "base", BaseName: "localhost:5000/base", Line: 1},
				{Name: "b2", BaseName: "base", FromStage: true, Line: 2},
			},
		},
		{
			name:       "FROM names itself: an image",
			dockerfile: "FROM python AS python\n",
			stages:     []Stage{{Name: "python", BaseName: "python", Line: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := Parse([]byte(tt.dockerfile), tt.args)
			if err != nil {
				t.Fatalf("ParseDockerfile: %v", err)
			}
			if !reflect.DeepEqual(info.Stages, tt.stages) {
				t.Errorf("stages:\n got %+v\nwant %+v", info.Stages, tt.stages)
			}
			if !reflect.DeepEqual(info.CopyFromImages, tt.copyFrom) {
				t.Errorf("CopyFromImages = %q, want %q", info.CopyFromImages, tt.copyFrom)
			}
			if !reflect.DeepEqual(info.NeedsExec, tt.needsExec) {
				t.Errorf("NeedsExec = %q, want %q", info.NeedsExec, tt.needsExec)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		dockerfile string
		args       map[string]string
		line       int      // Error.Line
		want       []string // substrings of the error
	}{
		{"empty", "", nil, 0, []string{"no instructions"}},
		{"only comments and ARG", "# hello\nARG X=1\n", nil, 0, []string{"no FROM"}},
		{"instruction before FROM", "RUN true\nFROM alpine\n", nil, 1, []string{"Dockerfile line 1: "}},
		{"unknown instruction", "FROM alpine\nFOO bar\n", nil, 2, []string{"Dockerfile line 2: ", "FOO"}},
		{"FROM with too many words", "FROM alpine AS\n", nil, 1, []string{"Dockerfile line 1: "}},
		{"invalid stage name", "FROM alpine\nFROM alpine AS 1bad\n", nil, 2, []string{"Dockerfile line 2: ", "1bad"}},
		{"unset arg gives blank base", "\nARG BASE\nFROM $BASE\n", nil, 3, []string{"Dockerfile line 3: ", "blank"}},
		{"unset arg gives invalid reference", "ARG REG\nFROM ${REG}/python:3.8\n", nil, 2, []string{"Dockerfile line 2: ", "invalid image reference"}},
		{"build arg gives invalid reference", "ARG TAG=3.8\n\nFROM python:$TAG\n", map[string]string{"TAG": "bad tag!"}, 3, []string{"Dockerfile line 3: ", "invalid image reference"}},
		{"uppercase repository", "FROM alpine\nRUN true\nFROM Python:3\n", nil, 3, []string{"Dockerfile line 3: "}},
		{"required arg missing", "ARG X\nFROM ${X:?X_is_required}\n", nil, 2, []string{"Dockerfile line 2: ", "X_is_required"}},
		{"bad meta ARG default", "ARG X=${Y:?need_Y}\nFROM alpine\n", nil, 1, []string{"Dockerfile line 1: ", "need_Y"}},
		{"COPY --from with a variable", "FROM alpine\nARG S=x\nCOPY --from=$S /a /b\n", nil, 3, []string{"Dockerfile line 3: ", "--from"}},
		{"COPY --from invalid image", "FROM alpine\nCOPY --from=Not:Valid:Ref /a /b\n", nil, 2, []string{"Dockerfile line 2: ", "invalid image reference"}},
		{"unterminated ${", "FROM alpine:${TAG\n", nil, 1, []string{"Dockerfile line 1: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := Parse([]byte(tt.dockerfile), tt.args)
			if err == nil {
				t.Fatalf("no error; got %+v", info)
			}
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("error %q (%T) is not a *Error", err, err)
			}
			if de.Line != tt.line {
				t.Errorf("error %q: Line = %d, want %d", err, de.Line, tt.line)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// A "# check=" comment anywhere is read, not a panic; in the middle of a
// file it is only a comment.
func TestReadParserDirectives(t *testing.T) {
	t.Parallel()
	for _, dockerfile := range []string{
		"FROM alpine\n# check=skip=all\nCOPY a /a\n",
		"# syntax=docker/dockerfile:1\n# check=skip=all;error=true\n# escape=`\nFROM alpine\n# check=error=true\nCMD a\n",
		"# check=error=true\nFROM alpine AS Build\n",
	} {
		f, err := Read([]byte(dockerfile))
		if err != nil {
			t.Fatalf("Read(%q): %v", dockerfile, err)
		}
		if len(f.Stages) != 1 {
			t.Errorf("Read(%q): %d stages, want 1", dockerfile, len(f.Stages))
		}
	}
}

func TestGlobalArgs(t *testing.T) {
	t.Parallel()
	f, err := Read([]byte("ARG A=${TARGETARCH}-x\nARG B\nARG C=${A}/$B\nFROM alpine\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.GlobalArgs(map[string]string{"B": "b"}, []string{"TARGETARCH=arm64"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"TARGETARCH=arm64", "A=arm64-x", "B=b", "C=arm64-x/b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GlobalArgs = %q, want %q", got, want)
	}
}
