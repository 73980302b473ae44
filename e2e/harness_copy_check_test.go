package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestCopyTrackedSkipsUntracked: what a user leaves in examples/ after
// following its README (kiln's data, the copied busybox) must not reach
// the tests' copy of it.
func TestCopyTrackedSkipsUntracked(t *testing.T) {
	git := ensureTool(t, "git", "git")
	repo := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(repo, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module x\n")
	write("examples/config.yml", "tracked\n")
	write("examples/python-base/Dockerfile", "tracked\n")
	write("examples/.gitignore", "/data/\n")
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}} {
		if out, err := exec.Command(git, append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write("examples/data/repositories/python/link", "ignored\n")
	write("examples/python-base/busybox", "untracked\n")

	to := t.TempDir()
	copyTracked(t, filepath.Join(repo, "examples"), to)

	want := []string{".gitignore", "config.yml", "python-base/Dockerfile"}
	if got := sortedSlash(allFiles(t, to)); !slices.Equal(got, want) {
		t.Errorf("copied %q, want only the tracked files %q", got, want)
	}
}

// TestCopyTrackedWithoutGit: an exported tree (no .git) is copied whole.
func TestCopyTrackedWithoutGit(t *testing.T) {
	from, to := t.TempDir(), t.TempDir()
	for _, rel := range []string{"config.yml", "python-base/Dockerfile"} {
		p := filepath.Join(from, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(rel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyTracked(t, from, to)
	want := []string{"config.yml", "python-base/Dockerfile"}
	if got := sortedSlash(allFiles(t, to)); !slices.Equal(got, want) {
		t.Errorf("copied %q, want %q", got, want)
	}
}

func sortedSlash(files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = filepath.ToSlash(f)
	}
	slices.Sort(out)
	return out
}
