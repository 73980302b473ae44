package e2e

import (
	"archive/tar"
	"context"
	"debug/elf"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"kiln/internal/testbed"
)

// staticBusybox returns the path of a statically linked busybox (from
// Debian's busybox-static), installing it when needed.
func staticBusybox(t *testing.T) string {
	t.Helper()
	const p = "/bin/busybox"
	if !isStaticELF(p) {
		aptInstall(t, "busybox-static", "a statically linked /bin/busybox")
		if !isStaticELF(p) {
			t.Fatalf("%s is not a static executable even after installing busybox-static", p)
		}
	}
	return p
}

func isStaticELF(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// busyboxRootfsTar writes a tarball holding only bin/busybox.
func busyboxRootfsTar(t *testing.T, busybox, dst string) {
	t.Helper()
	b, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	must := func(err error) {
		if err != nil {
			t.Fatalf("writing %s: %v", dst, err)
		}
	}
	mtime := time.Unix(1700000000, 0)
	must(tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime}))
	must(tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(b)), ModTime: mtime}))
	_, err = tw.Write(b)
	must(err)
	must(tw.Close())
}

type dockerEnv struct {
	env []string // DOCKER_HOST=...
}

// startDockerd starts a private dockerd and stops it when the test ends.
func startDockerd(t *testing.T) *dockerEnv {
	t.Helper()
	return launchDockerd(t, "kiln-e2e-dockerd-")
}

// launchDockerd starts a private dockerd (internal/testbed) with its state
// in a fresh directory named from statePrefix and extraArgs added to its
// flags; when the test ends it is stopped, its log shown if the test
// failed, and its state removed.
func launchDockerd(t *testing.T, statePrefix string, extraArgs ...string) *dockerEnv {
	t.Helper()
	ensureTool(t, "dockerd", "docker.io")
	ensureTool(t, "docker", "docker.io")
	// Under /tmp, short, so the socket path fits in sun_path.
	state, err := os.MkdirTemp("/tmp", statePrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(state); err != nil {
			t.Logf("removing %s: %v", state, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	d, err := testbed.StartDockerd(ctx, state, extraArgs...)
	if err != nil {
		t.Fatalf("dockerd: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(d.LogFile)
			t.Logf("dockerd.log:\n%s", tail(string(b), 40))
		}
		if err := d.Stop(); err != nil {
			t.Log(err) // stopped all the same
		}
	})
	return &dockerEnv{env: []string{"DOCKER_HOST=" + d.Host, "DOCKER_CONFIG=" + filepath.Join(state, "client-config")}}
}

func (d *dockerEnv) run(t *testing.T, args ...string) cmdResult {
	t.Helper()
	return runCmd(t, cmdOpts{Env: d.env, Timeout: 5 * time.Minute}, "docker", args...)
}

func (d *dockerEnv) must(t *testing.T, args ...string) string {
	t.Helper()
	return mustRun(t, cmdOpts{Env: d.env, Timeout: 5 * time.Minute}, "docker", args...)
}

var pushDigestRE = regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: (\d+)`)

// TestDocker pushes a one-binary busybox image with docker, removes it
// locally, pulls it back (by tag and by digest) and runs it.
func TestDocker(t *testing.T) {
	reg := needRegistry(t)
	busybox := staticBusybox(t)
	docker := startDockerd(t)

	repo := reg.Repo("docker", "busybox")
	ref := reg.Addr + "/" + repo + ":v1"

	rootfs := filepath.Join(t.TempDir(), "rootfs.tar")
	busyboxRootfsTar(t, busybox, rootfs)
	docker.must(t, "import", rootfs, ref)

	pushOut := docker.must(t, "push", ref)
	m := pushDigestRE.FindStringSubmatch(pushOut)
	if m == nil {
		t.Fatalf("docker push printed no digest:\n%s", pushOut)
	}
	pushed := m[1]
	t.Logf("docker pushed %s as %s", ref, pushed)

	// The registry must serve the same manifest for the tag and its blobs.
	if got := checkManifestTree(t, reg, repo, "v1"); got != pushed {
		t.Errorf("registry's Docker-Content-Digest for %s:v1 is %s, docker pushed %s", repo, got, pushed)
	}
	resp, _ := doHTTP(t, "HEAD", reg.URL+"/v2/"+repo+"/manifests/v1",
		map[string][]string{"Accept": {acceptManifests}}, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != pushed {
		t.Errorf("HEAD manifest v1: %s, Docker-Content-Digest %q, want 200 and %s",
			resp.Status, resp.Header.Get("Docker-Content-Digest"), pushed)
	}

	// The same image through the localhost name, into a second repository:
	// docker mounts the blobs from the first one.
	var localRef string
	if host, port, err := net.SplitHostPort(reg.Addr); err == nil && (host == "127.0.0.1" || host == "localhost") {
		localRepo := reg.Repo("docker", "busybox-localhost")
		localRef = "localhost:" + port + "/" + localRepo + ":v1"
		docker.must(t, "tag", ref, localRef)
		out := docker.must(t, "push", localRef)
		if m := pushDigestRE.FindStringSubmatch(out); m == nil || m[1] != pushed {
			t.Errorf("docker push %s: want digest %s in output:\n%s", localRef, pushed, out)
		}
		if got := checkManifestTree(t, reg, localRepo, "v1"); got != pushed {
			t.Errorf("registry's digest for %s:v1 is %s, want %s", localRepo, got, pushed)
		}
	} else {
		t.Logf("registry %s is not on 127.0.0.1/localhost; the localhost:PORT variant is not applicable", reg.Addr)
	}

	// Remove every local copy, then pull back.
	rmi := []string{"rmi", ref}
	if localRef != "" {
		rmi = append(rmi, localRef)
	}
	docker.must(t, rmi...)
	if r := docker.run(t, "image", "inspect", ref); r.Err == nil {
		t.Fatalf("%s is still present locally after docker rmi", ref)
	}

	docker.must(t, "pull", ref)
	repoDigest := strings.TrimSpace(docker.must(t, "inspect", "--format", "{{index .RepoDigests 0}}", ref))
	if want := reg.Addr + "/" + repo + "@" + pushed; repoDigest != want {
		t.Errorf("pulled image's RepoDigests[0] = %q, want %q", repoDigest, want)
	}
	out := docker.must(t, "run", "--rm", "--network", "none", ref, "/bin/busybox", "echo", "hello")
	if strings.TrimSpace(out) != "hello" {
		t.Errorf("docker run printed %q, want %q", out, "hello")
	}

	// Pull by digest.
	byDigest := reg.Addr + "/" + repo + "@" + pushed
	docker.must(t, "rmi", ref)
	docker.must(t, "pull", byDigest)
	out = docker.must(t, "run", "--rm", "--network", "none", byDigest, "/bin/busybox", "echo", "by-digest")
	if strings.TrimSpace(out) != "by-digest" {
		t.Errorf("docker run %s printed %q", byDigest, out)
	}
	if localRef != "" {
		docker.must(t, "pull", localRef)
		d := strings.TrimSpace(docker.must(t, "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", localRef))
		if !strings.Contains(d, "@"+pushed) {
			t.Errorf("RepoDigests of %s = %q, want one @%s", localRef, d, pushed)
		}
	}
}
