package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"kiln/config"
)

// TestExamplesLeaveNothingUntracked: examples/.gitignore covers what
// following examples/README.md writes: kiln's data (the root its
// config.yml names) and the busybox copied into python-base/. It checks in
// a scratch repository holding only that .gitignore, so it needs no git
// metadata of this one.
func TestExamplesLeaveNothingUntracked(t *testing.T) {
	git := ensureTool(t, "git", "git")
	root, err := findModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	examples := filepath.Join(root, "examples")
	raw, err := os.ReadFile(filepath.Join(examples, "config.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(raw, "examples/config.yml")
	if err != nil {
		t.Fatal(err)
	}
	ignore, err := os.ReadFile(filepath.Join(examples, ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	scratch := t.TempDir()
	if out, err := exec.Command(git, "-C", scratch, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	if err := os.MkdirAll(filepath.Join(scratch, "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(scratch, "examples", ".gitignore"), ignore, 0o644); err != nil {
		t.Fatal(err)
	}
	left := []string{
		filepath.Join("examples", cfg.Storage.Filesystem.Root, "repositories", "python", "_manifests", "link"),
		filepath.Join("examples", "python-base", "busybox"),
	}
	for _, p := range left {
		// check-ignore exits 0 when the path is ignored, 1 when it is not.
		if out, err := exec.Command(git, "-C", scratch, "check-ignore", "--no-index", p).CombinedOutput(); err != nil {
			t.Errorf("%s, which the example writes, is not ignored by examples/.gitignore: %v %s", p, err, out)
		}
	}
}
