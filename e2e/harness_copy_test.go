package e2e

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// copyTracked copies the files git tracks below from into to. What a
// user's run of the examples left there (kiln's data, a copied busybox)
// stays behind: it would change what the tests count.
func copyTracked(t *testing.T, from, to string) {
	t.Helper()
	for _, rel := range trackedFiles(t, from) {
		src, dst := filepath.Join(from, rel), filepath.Join(to, rel)
		fi, err := os.Stat(src)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// trackedFiles lists the files git tracks below dir, relative to it. A
// tree without git metadata (an exported copy of the repository) has
// nothing untracked to tell apart, so then every file is listed.
func trackedFiles(t *testing.T, dir string) []string {
	t.Helper()
	if !insideGitTree(dir) {
		return allFiles(t, dir)
	}
	git := ensureTool(t, "git", "git")
	cmd := exec.Command(git, "-C", dir, "ls-files", "-z", "--cached", "--", ".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files in %s: %v\n%s", dir, err, stderr.Bytes())
	}
	var files []string
	for _, f := range bytes.Split(out, []byte{0}) {
		if len(f) > 0 {
			files = append(files, filepath.FromSlash(string(f)))
		}
	}
	if len(files) == 0 {
		t.Fatalf("git tracks no file below %s", dir)
	}
	return files
}

// insideGitTree reports whether dir or a parent holds .git (a directory,
// or a file in a linked worktree).
func insideGitTree(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		if _, err := os.Lstat(filepath.Join(dir, ".git")); err == nil {
			return true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return false
		}
		dir = parent
	}
}

func allFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files = append(files, rel)
		return nil
	})
	if err == nil && len(files) == 0 {
		err = errors.New("no files")
	}
	if err != nil {
		t.Fatalf("listing %s: %v", dir, err)
	}
	return files
}
