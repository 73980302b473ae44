package e2e

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// kilnUID is the image's user (deploy/docker/rootfs/etc/passwd).
const kilnUID = 65532

// imageConfig is the part of `docker inspect` .Config the test checks.
type imageConfig struct {
	User         string
	ExposedPorts map[string]struct{}
	Volumes      map[string]struct{}
	Env          []string
	Entrypoint   []string
	Cmd          []string
	Healthcheck  *struct{ Test []string }
}

// TestPackagingImage builds the image with deploy/docker-build.sh on the
// private dockerd (no network, no base image), checks its metadata and
// filesystem, runs it, pushes and pulls through it, and stops it.
func TestPackagingImage(t *testing.T) {
	needSetup(t)
	docker := startDockerd(t)
	const image = "kiln-e2e-packaging:test"

	mustRun(t, cmdOpts{Env: append(docker.env, "GO="+goBin()), Dir: moduleRoot, Timeout: 15 * time.Minute},
		"bash", filepath.Join(moduleRoot, "deploy", "docker-build.sh"), image)

	t.Run("metadata", func(t *testing.T) {
		var cfg imageConfig
		out := docker.must(t, "image", "inspect", "--format", "{{json .Config}}", image)
		if err := json.Unmarshal([]byte(out), &cfg); err != nil {
			t.Fatalf("docker inspect .Config: %v\n%s", err, out)
		}
		if u := strings.SplitN(cfg.User, ":", 2)[0]; u == "" || u == "0" || u == "root" {
			t.Errorf("image User = %q, want a non-root user", cfg.User)
		}
		if cfg.User != "65532:65532" {
			t.Errorf("image User = %q, want 65532:65532", cfg.User)
		}
		if _, ok := cfg.ExposedPorts["5000/tcp"]; !ok {
			t.Errorf("ExposedPorts = %v, want 5000/tcp", cfg.ExposedPorts)
		}
		if _, ok := cfg.Volumes["/data"]; !ok {
			t.Errorf("Volumes = %v, want /data", cfg.Volumes)
		}
		if !containsString(cfg.Env, "KILN_DATA=/data") {
			t.Errorf("Env = %q, want KILN_DATA=/data", cfg.Env)
		}
		if strings.Join(cfg.Entrypoint, " ") != "/kiln" || strings.Join(cfg.Cmd, " ") != "serve" {
			t.Errorf("Entrypoint %q, Cmd %q; want [/kiln] [serve]", cfg.Entrypoint, cfg.Cmd)
		}
		if cfg.Healthcheck == nil || strings.Join(cfg.Healthcheck.Test, " ") != "CMD /kiln healthcheck" {
			t.Errorf("Healthcheck = %+v, want CMD /kiln healthcheck", cfg.Healthcheck)
		}
	})

	t.Run("filesystem", func(t *testing.T) { checkImageFiles(t, docker, image) })

	t.Run("run", func(t *testing.T) { runImage(t, docker, image) })
}

// checkImageFiles exports the image's filesystem and checks what is in it:
// a static /kiln, the user's passwd entry, /data owned by it, the CA bundle.
func checkImageFiles(t *testing.T, docker *dockerEnv, image string) {
	ctr := strings.TrimSpace(docker.must(t, "create", image))
	defer docker.run(t, "rm", ctr)
	tarPath := filepath.Join(t.TempDir(), "rootfs.tar")
	docker.must(t, "export", "--output", tarPath, ctr)

	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string]*tar.Header{}
	var passwd []byte
	binPath := filepath.Join(t.TempDir(), "kiln")
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the exported filesystem: %v", err)
		}
		n := "/" + strings.Trim(h.Name, "/")
		files[n] = h
		switch n {
		case "/etc/passwd":
			passwd, _ = io.ReadAll(tr)
		case "/kiln":
			b, _ := io.ReadAll(tr)
			if err := os.WriteFile(binPath, b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if h := files["/kiln"]; h == nil || h.Mode&0o111 == 0 {
		t.Errorf("/kiln missing or not executable: %+v", h)
	} else if !isStaticELF(binPath) {
		t.Errorf("/kiln is not a static executable: a scratch image has no dynamic loader")
	}
	if h := files["/data"]; h == nil || h.Typeflag != tar.TypeDir || h.Uid != kilnUID || h.Gid != kilnUID {
		t.Errorf("/data = %+v, want a directory owned by %d:%d", h, kilnUID, kilnUID)
	}
	if !strings.Contains(string(passwd), "kiln:x:65532:65532:") {
		t.Errorf("/etc/passwd has no kiln user with uid 65532:\n%s", passwd)
	}
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil && files["/etc/ssl/certs/ca-certificates.crt"] == nil {
		t.Errorf("the build host has /etc/ssl/certs/ca-certificates.crt but the image does not: HTTPS upstreams would fail")
	}
	for _, shell := range []string{"/bin/sh", "/bin/busybox"} {
		if files[shell] != nil {
			t.Errorf("%s is in the image; it should hold only kiln", shell)
		}
	}
}

// runImage runs the image with a named volume on the host network, pushes
// and pulls an image through it, checks the volume's files belong to the
// image's user, that the health check passes and that SIGTERM exits 0, then
// starts it again to see the data persisted.
func runImage(t *testing.T, docker *dockerEnv, image string) {
	const ctr, vol = "kiln-e2e-packaging", "kiln-e2e-packaging-data"
	t.Cleanup(func() { docker.run(t, "rm", "-f", "-v", ctr) })
	// The image as users run it: KILN_ADDR, which its health check reads
	// too, so a fixed port rather than port 0.
	addr := onFreePort(t, func(addr string) error {
		docker.run(t, "rm", "-f", ctr) // a try that lost its port
		docker.must(t, "run", "-d", "--name", ctr, "--network", "host",
			"-e", "KILN_ADDR="+addr, "-v", vol+":/data",
			"--health-interval", "1s", "--health-retries", "3", image)
		return containerUp(t, docker, ctr, "http://"+addr)
	})

	// The server runs as the image's user, not root.
	pid := strings.TrimSpace(docker.must(t, "inspect", "--format", "{{.State.Pid}}", ctr))
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatalf("reading kiln's /proc status: %v", err)
	}
	if uids := procField(string(status), "Uid:"); uids != "65532 65532 65532 65532" {
		t.Errorf("kiln runs with Uid %q, want 65532 for real, effective, saved and fs", uids)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ref, err := name.ParseReference(addr+"/e2e/packaging/random:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(8192, 2)
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("push to the container: %v", err)
	}
	got, err := remote.Image(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("pull from the container: %v", err)
	}
	if d, _ := got.Digest(); d != want {
		t.Errorf("pulled digest %s, pushed %s", d, want)
	}
	if err := validate.Image(got); err != nil {
		t.Errorf("validate.Image of the pulled image (every blob fetched and hashed): %v", err)
	}

	// Everything kiln wrote into the named volume belongs to its user.
	mount := strings.TrimSpace(docker.must(t, "volume", "inspect", "--format", "{{.Mountpoint}}", vol))
	checkOwnedBy(t, mount, kilnUID, want.Hex)

	// The image's HEALTHCHECK (kiln healthcheck) reports healthy; exec
	// works without a shell since it runs the binary directly.
	if out := docker.must(t, "exec", ctr, "/kiln", "healthcheck"); strings.TrimSpace(out) != "ok" {
		t.Errorf("docker exec /kiln healthcheck printed %q, want ok", out)
	}
	waitHealthy(t, docker, ctr)

	stopContainer(t, docker, ctr)

	// The same volume serves the image after a restart.
	docker.must(t, "start", ctr)
	waitContainer(t, docker, ctr, "http://"+addr)
	byDigest, err := name.ParseReference(addr+"/e2e/packaging/random@"+want.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(byDigest, remote.WithContext(ctx)); err != nil {
		t.Errorf("after a restart on the same volume, pulling %s: %v", byDigest, err)
	}
	stopContainer(t, docker, ctr)
}

// waitContainer waits for the container's kiln to answer /v2/, failing with
// its logs if it does not.
func waitContainer(t *testing.T, docker *dockerEnv, ctr, url string) {
	t.Helper()
	if err := containerUp(t, docker, ctr, url); err != nil {
		t.Fatal(err)
	}
}

// containerUp waits until kiln in the container answers url/v2/, or the
// container exits; the error wraps errPortTaken when kiln could not bind
// its address.
func containerUp(t *testing.T, docker *dockerEnv, ctr, url string) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan struct{})
	wait := exec.CommandContext(ctx, "docker", "wait", ctr)
	wait.Env = append(os.Environ(), docker.env...)
	if err := wait.Start(); err != nil {
		return err
	}
	go func() {
		// Only a container that exited; a failed `docker wait` leaves
		// the timeout to decide.
		if wait.Wait() == nil {
			close(exited)
		}
	}()
	err := waitForV2(url, 60*time.Second, exited)
	if err == nil {
		return nil
	}
	logs := docker.run(t, "logs", ctr)
	err = fmt.Errorf("kiln in the container: %v\nlogs:\n%s%s", err, tail(logs.Stdout, 30), tail(logs.Stderr, 30))
	if strings.Contains(logs.Stdout+logs.Stderr, "address already in use") {
		return fmt.Errorf("%w: %w", errPortTaken, err)
	}
	return err
}

// waitHealthy polls the container's health status until Docker's own probe
// has run and passed; "unhealthy" fails at once.
func waitHealthy(t *testing.T, docker *dockerEnv, ctr string) {
	t.Helper()
	waitFor(t, 60*time.Second, "the container's health check passing", func() (bool, string) {
		r := runCmd(t, cmdOpts{Env: docker.env, Quiet: true}, "docker", "inspect", "--format", "{{.State.Health.Status}}", ctr)
		status := strings.TrimSpace(r.Stdout)
		if status == "unhealthy" || r.Err != nil {
			log := docker.run(t, "inspect", "--format", "{{json .State.Health}}", ctr)
			t.Fatalf("health status %q (%v), want healthy: %s", status, r.Err, log.Stdout)
		}
		return status == "healthy", "health status " + status
	})
}

// stopContainer stops with SIGTERM, leaving more than http.shutdown_timeout
// before Docker would SIGKILL, and checks kiln drained and exited 0.
func stopContainer(t *testing.T, docker *dockerEnv, ctr string) {
	t.Helper()
	docker.must(t, "stop", "-t", "45", ctr) // -t: docker 20.10 lacks --timeout
	state := strings.TrimSpace(docker.must(t, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}", ctr))
	if state != "exited 0 false" {
		logs := docker.run(t, "logs", ctr)
		t.Errorf("after docker stop: status, exit code, OOM-killed = %q, want \"exited 0 false\"\nlogs:\n%s", state, tail(logs.Stderr, 30))
	}
}

// procField returns a /proc/PID/status field's value with tabs as spaces.
func procField(status, key string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

// checkOwnedBy walks dir: every entry must belong to uid, and some file's
// path must name the pushed manifest digest's hex (so kiln wrote there).
func checkOwnedBy(t *testing.T, dir string, uid int, hex string) {
	t.Helper()
	entries, foundDigest := 0, false
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return errors.New("no stat_t")
		}
		if int(st.Uid) != uid || int(st.Gid) != uid {
			t.Errorf("%s is owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, uid)
		}
		entries++
		if strings.Contains(p, hex) {
			foundDigest = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking the volume %s: %v", dir, err)
	}
	if !foundDigest {
		t.Errorf("no path under the volume %s (%d entries) names the pushed manifest %s: kiln did not store into /data", dir, entries, hex)
	}
	t.Logf("volume %s: %d entries, all owned by %s", dir, entries, strconv.Itoa(uid))
}
