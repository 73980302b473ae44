package config

import (
	"strings"
	"testing"
)

func TestBuildRules(t *testing.T) {
	t.Parallel()
	ok := "builds:\n  - name: app\n    context: ./app\n    tags: [app:v1]\n"
	c, err := Parse([]byte(ok), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	b := c.Builds[0]
	if b.Dockerfile != "Dockerfile" || b.Builder != "auto" || b.Strategy != "build" {
		t.Errorf("defaults not applied: %+v", b)
	}
	if c.Buildhook.AutoRebase {
		t.Error("buildhook.autorebase is on by default")
	}
	if c, err := Parse([]byte("buildhook:\n  autorebase: true\n"), "t.yml"); err != nil || !c.Buildhook.AutoRebase {
		t.Errorf("buildhook.autorebase: true: %v %+v", err, c)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"builds:\n  - name: a\n    context: x\n    tags: [a:v1]\n  - name: a\n    context: y\n    tags: [b:v1]\n", `builds[1].name: "a" is used by another rule`},
		{"builds:\n  - name: a\n    tags: [a:v1]\n", "builds[0].context: must be set"},
		{"builds:\n  - name: a\n    context: x\n    tags: [App:v1]\n", `builds[0].tags: "App:v1" is not repo:tag`},
		{"builds:\n  - name: a\n    context: x\n    tags: [app]\n", `builds[0].tags: "app" is not repo:tag`},
		{"builds:\n  - name: a\n    context: x\n    tags: [a:v1]\n    builder: podman\n", `builds[0].builder: unknown builder "podman"`},
		{"builds:\n  - name: a\n    context: x\n    tags: [a:v1]\n    strategy: magic\n", `builds[0].strategy: unknown strategy "magic"`},
		{"buildhook:\n  concurrency: 0\n", "buildhook.concurrency: must be at least 1"},
		{"buildhook:\n  window: soon\n", "buildhook.window"},
		{"buildhook:\n  autorebase: maybe\n", "autorebase"},
	} {
		c, err := Parse([]byte(tc.yaml), "t.yml")
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
