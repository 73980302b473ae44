package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Dockerd is a private Docker Engine (Debian's docker.io) listening only on
// a unix socket of its own. It needs no iptables, no bridge and no
// overlayfs, so it also runs in sandboxes where the stock service would not.
type Dockerd struct {
	Host    string // DOCKER_HOST value: unix://STATE/docker.sock
	LogFile string // the daemon's output

	daemon *daemon
}

const (
	dockerdReadyTimeout = time.Minute
	// dockerdStopGrace leaves time for dockerd to stop its containers and
	// its containerd.
	dockerdStopGrace = 30 * time.Second
)

// StartDockerd starts dockerd with all its state in stateDir, which must be
// short enough for a socket path (about 100 bytes), and extraArgs added to
// its flags. It installs docker.io when dockerd or docker is missing (as
// root only). The caller must call Stop.
func StartDockerd(ctx context.Context, stateDir string, extraArgs ...string) (*Dockerd, error) {
	if err := ensureDocker(ctx); err != nil {
		return nil, err
	}
	sock := filepath.Join(stateDir, "docker.sock")
	args := append([]string{
		"--host", "unix://" + sock,
		"--data-root", filepath.Join(stateDir, "data"),
		"--exec-root", filepath.Join(stateDir, "exec"),
		"--pidfile", filepath.Join(stateDir, "dockerd.pid"),
		"--iptables=false", "--ip6tables=false", "--bridge=none",
		"--storage-driver=vfs",
	}, extraArgs...)
	d := &Dockerd{Host: "unix://" + sock, LogFile: filepath.Join(stateDir, "dockerd.log")}
	daemon, err := startDaemon("dockerd", d.LogFile, os.Environ(), "dockerd", args...)
	if err != nil {
		return nil, err
	}
	if err := daemon.waitReady(ctx, dockerdReadyTimeout, d.answers); err != nil {
		daemon.stop(dockerdStopGrace)
		return nil, err
	}
	d.daemon = daemon
	return d, nil
}

// answers succeeds once `docker version` reaches the daemon.
func (d *Dockerd) answers(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker version: %w: %s", err, lastLines(string(out), 3))
	}
	return nil
}

// Stop stops the daemon: SIGTERM, then SIGKILL for it and its children if
// it lingers. Calling it again does nothing.
func (d *Dockerd) Stop() error {
	if d.daemon == nil {
		return nil
	}
	daemon := d.daemon
	d.daemon = nil
	return daemon.stop(dockerdStopGrace)
}

// ensureDocker installs Debian's docker.io unless both the daemon and the
// client are on PATH.
func ensureDocker(ctx context.Context) error {
	_, errDaemon := exec.LookPath("dockerd")
	_, errClient := exec.LookPath("docker")
	if errDaemon == nil && errClient == nil {
		return nil
	}
	if err := aptInstall(ctx, "the Docker Engine (dockerd, docker)", "docker.io"); err != nil {
		return err
	}
	for _, bin := range []string{"dockerd", "docker"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is still missing after installing docker.io", bin)
		}
	}
	return nil
}
