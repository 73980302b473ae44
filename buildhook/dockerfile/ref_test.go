package dockerfile

import (
	"strings"
	"testing"

	"kiln/buildhook/build"
)

func TestLocalRef(t *testing.T) {
	t.Parallel()
	hosts := []string{"localhost:5000", "127.0.0.1:5000", "Registry.Example.com"}
	tests := []struct {
		ref  string
		want build.ImageRef
		ok   bool
	}{
		{"localhost:5000/python:3.8", build.ImageRef{Repo: "python", Tag: "3.8"}, true},
		{"127.0.0.1:5000/python:3.8", build.ImageRef{Repo: "python", Tag: "3.8"}, true},
		{"localhost:5000/python", build.ImageRef{Repo: "python", Tag: "latest"}, true},
		{"localhost:5000/team/app/api:v1", build.ImageRef{Repo: "team/app/api", Tag: "v1"}, true},
		{"LOCALHOST:5000/python:3.8", build.ImageRef{Repo: "python", Tag: "3.8"}, true},
		{"registry.example.com/base:1", build.ImageRef{Repo: "base", Tag: "1"}, true},
		{"REGISTRY.EXAMPLE.COM/base", build.ImageRef{Repo: "base", Tag: "latest"}, true},
		{"localhost:5000/python@sha256:" + strings.Repeat("a", 64), build.ImageRef{}, false},
		{"localhost:5000/python:3.8@sha256:" + strings.Repeat("a", 64), build.ImageRef{}, false},
		{"localhost:5001/python:3.8", build.ImageRef{}, false},
		{"localhost/python:3.8", build.ImageRef{}, false},
		{"python:3.8", build.ImageRef{}, false},
		{"docker.io/library/python:3.8", build.ImageRef{}, false},
		{"ghcr.io/org/img:1", build.ImageRef{}, false},
		{"scratch", build.ImageRef{}, false},
		{"localhost:5000/Python:3.8", build.ImageRef{}, false}, // invalid: uppercase repository
		{"", build.ImageRef{}, false},
	}
	for _, tt := range tests {
		got, ok := LocalRef(tt.ref, hosts)
		if ok != tt.ok || got != tt.want {
			t.Errorf("LocalRef(%q) = %v, %v; want %v, %v", tt.ref, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := LocalRef("localhost:5000/python:3.8", nil); ok {
		t.Error("LocalRef with no hosts matched")
	}
}
