package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// workDirs lists the kilns' working directories under the environment's
// buildhook.work_dir.
func (e *buildKilnEnv) workDirs(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(e.dir, "work", "kiln-*"))
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// checkBuildahStorage checks that the running kiln has one private working
// directory and that buildah's storage in it holds exactly the images
// want (their config digests): the bases still tagged, nothing older.
func (e *buildKilnEnv) checkBuildahStorage(t *testing.T, want ...string) {
	t.Helper()
	dirs := e.workDirs(t)
	if len(dirs) != 1 {
		t.Fatalf("working directories %v, want the running kiln's only", dirs)
	}
	if fi, err := os.Stat(dirs[0]); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("working directory %s: %v %v, want mode 0700", dirs[0], fi.Mode(), err)
	}
	root := filepath.Join(dirs[0], "buildah")
	out := mustRun(t, cmdOpts{Quiet: true}, "buildah", "--root", filepath.Join(root, "sandbox"), "--runroot", filepath.Join(root, "sandbox-run"),
		"--storage-driver", "overlay", "images", "--all", "--no-trunc", "--format", "{{.ID}}")
	got := strings.Fields(out)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("buildah's storage holds images %v, want only %v (the base still tagged)", got, want)
	}
}
