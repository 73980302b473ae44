package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// podmanPullPush pulls repoTag (pushed by buildah as wantDigest) with podman
// into a private storage, checks the digest podman recorded, then pushes the
// image to a second repository and checks the registry serves it there.
// (Running containers with podman needs rlimits that sandboxes often deny,
// so the image is not run; TestDocker runs its image.)
func podmanPullPush(t *testing.T, reg *registryEnv, repoTag, wantDigest string, env []string) {
	ensureTool(t, "podman", "podman")
	dir := t.TempDir()
	podman := func(args ...string) string {
		t.Helper()
		global := append(storageArgs(dir), "--events-backend", "none", "--cgroup-manager", "cgroupfs")
		return strings.TrimSpace(mustRun(t, cmdOpts{Env: env, Timeout: 5 * time.Minute}, "podman", append(global, args...)...))
	}

	ref := reg.Addr + "/" + repoTag
	podman("pull", "--tls-verify=false", ref)
	if got := podman("image", "inspect", "--format", "{{.Digest}}", ref); got != wantDigest {
		t.Errorf("podman's digest for %s is %q, want %s", ref, got, wantDigest)
	}
	repoDigests := podman("image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", ref)
	repo := repoTag[:strings.LastIndex(repoTag, ":")]
	if want := reg.Addr + "/" + repo + "@" + wantDigest; !strings.Contains(repoDigests, want) {
		t.Errorf("podman RepoDigests %q, want %s among them", repoDigests, want)
	}

	// Push to another repository (blobs are mounted or re-uploaded).
	repo2 := reg.Repo("podman", "img")
	digestFile := filepath.Join(dir, "digest")
	podman("push", "--tls-verify=false", "--digestfile", digestFile, ref, "docker://"+reg.Addr+"/"+repo2+":v1")
	b, err := os.ReadFile(digestFile)
	if err != nil {
		t.Fatalf("podman push wrote no digest file: %v", err)
	}
	pushed := strings.TrimSpace(string(b))
	if got := checkManifestTree(t, reg, repo2, "v1"); got != pushed {
		t.Errorf("%s:v1: registry says %s, podman pushed %s", repo2, got, pushed)
	}
}
