package native

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/internal/imagetest"
)

func TestImageRef(t *testing.T) {
	t.Parallel()
	job := imagetest.Job("127.0.0.1:5000", "", "x", build.ImageRef{Repo: "python", Tag: "3.8"}, digest.Digest("sha256:"+strings.Repeat("a", 64)))
	job.Rule.Bases = append(job.Rule.Bases, build.ImageRef{Repo: "team/base", Tag: "1"})
	for _, tc := range []struct {
		hosts     []string
		upstreams []string
		from      string
		want      string // "" for refused
		insecure  bool
	}{
		// The tag that moved is pinned to the trigger's digest.
		{nil, nil, "localhost:5000/python:3.8", "127.0.0.1:5000/python@sha256:" + strings.Repeat("a", 64), true},
		{nil, nil, "127.0.0.1:5000/python:3.9", "127.0.0.1:5000/python:3.9", true},
		{nil, nil, "[::1]:5000/team/base:1", "127.0.0.1:5000/team/base:1", true},
		// Without Hosts, a rule base under another name is this registry.
		{nil, nil, "kiln.example.com/team/base:1", "127.0.0.1:5000/team/base:1", true},
		{nil, nil, "kiln.example.com/team/other:1", "", false},
		{[]string{"kiln.example.com"}, nil, "kiln.example.com/team/other:1", "127.0.0.1:5000/team/other:1", true},
		{[]string{"kiln.example.com"}, nil, "ghcr.io/team/base:1", "", false},
		{nil, nil, "python:3.8", "", false},
		// Other registries are refused; mirrored ones go through kiln's cache.
		{nil, nil, "localhost:5001/python:3.8", "", false},
		{nil, []string{"docker.io"}, "python:3.8", "127.0.0.1:5000/docker.io/library/python:3.8", true},
		{nil, []string{"ghcr.io"}, "ghcr.io/team/x:1", "127.0.0.1:5000/ghcr.io/team/x:1", true},
		{nil, []string{"ghcr.io"}, "127.0.0.1:5001/team/base:1", "", false},
	} {
		br := &buildRun{b: &Builder{Hosts: tc.hosts, Upstreams: tc.upstreams}, job: job}
		ref, err := br.imageRef(tc.from)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%v %s -> %s, want it refused", tc.hosts, tc.from, ref.Name())
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if ref.Name() != tc.want || (ref.Context().Scheme() == "http") != tc.insecure {
			t.Errorf("%v %s -> %s (%s), want %s (insecure %v)", tc.hosts, tc.from, ref.Name(), ref.Context().Scheme(), tc.want, tc.insecure)
		}
	}
}
