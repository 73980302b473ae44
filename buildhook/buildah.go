package buildhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"

	"github.com/opencontainers/go-digest"
)

// BuildahBuilder builds with the buildah CLI (chroot isolation, vfs storage:
// no daemon and no privileges beyond the process's own).
type BuildahBuilder struct {
	// Root holds buildah's storage (--root; --runroot beside it).
	Root string
}

// Name implements Builder.
func (BuildahBuilder) Name() string { return "buildah" }

func (b BuildahBuilder) cmd(ctx context.Context, log io.Writer, args ...string) *exec.Cmd {
	base := []string{"--root", filepath.Join(b.Root, "root"), "--runroot", filepath.Join(b.Root, "run"), "--storage-driver", "vfs"}
	c := exec.CommandContext(ctx, "buildah", append(base, args...)...)
	c.Stdout, c.Stderr = log, log
	return c
}

// Build implements Builder.
func (b BuildahBuilder) Build(ctx context.Context, job *Job, log io.Writer) (digest.Digest, error) {
	if _, err := exec.LookPath("buildah"); err != nil {
		return "", fmt.Errorf("buildah is not installed: %w", err)
	}
	image := job.Registry + "/" + job.Staging.String()
	authFile, removeAuth, err := buildahAuthFile(job)
	if err != nil {
		return "", err
	}
	defer removeAuth()
	args := append([]string{"bud", "--isolation", "chroot", "--pull=always"}, buildahSelfArgs(job, authFile)...)
	args = append(args, "-f", filepath.Join(job.Rule.Context, job.Rule.Dockerfile), "-t", image)
	keys := make([]string, 0, len(job.Rule.Args))
	for k := range job.Rule.Args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--build-arg", k+"="+job.Rule.Args[k])
	}
	args = append(args, job.Rule.Context)
	fmt.Fprintf(log, "$ buildah %v\n", args)
	if err := b.cmd(ctx, log, args...).Run(); err != nil {
		return "", fmt.Errorf("buildah bud: %w", err)
	}
	fmt.Fprintf(log, "pushing %s\n", image)
	push := append(append([]string{"push"}, buildahSelfArgs(job, authFile)...), image, "docker://"+image)
	if err := b.cmd(ctx, log, push...).Run(); err != nil {
		return "", transient(fmt.Errorf("buildah push: %w", err))
	}
	b.cmd(context.WithoutCancel(ctx), io.Discard, "rmi", image).Run()
	return resolveStaging(ctx, job)
}

// buildahSelfArgs are the flags that reach kiln itself: over HTTPS its
// certificate as a trusted CA (--cert-dir adds to the system roots, so
// other registries still verify), over plain HTTP --tls-verify=false; and
// the login file, if any.
func buildahSelfArgs(job *Job, authFile string) []string {
	var args []string
	if job.Self.CertDir != "" {
		args = append(args, "--tls-verify=true", "--cert-dir", job.Self.CertDir)
	} else {
		args = append(args, "--tls-verify=false")
	}
	if authFile != "" {
		args = append(args, "--authfile", authFile)
	}
	return args
}

// buildahAuthFile writes kiln's internal builder login, for kiln's address
// only, as an --authfile: --creds would be sent to every registry the
// build pulls from. It goes to memory-backed /dev/shm when there is one,
// readable by this user only; remove deletes it. "" when there is no login.
func buildahAuthFile(job *Job) (path string, remove func(), err error) {
	if job.Self.Username == "" {
		return "", func() {}, nil
	}
	dir := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir = "/dev/shm"
	}
	f, err := os.CreateTemp(dir, "kiln-buildah-auth-*.json")
	if err != nil {
		return "", nil, err
	}
	remove = func() { os.Remove(f.Name()) }
	basic := base64.StdEncoding.EncodeToString([]byte(job.Self.Username + ":" + job.Self.Password))
	err = json.NewEncoder(f).Encode(map[string]any{"auths": map[string]any{job.Registry: map[string]string{"auth": basic}}})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		remove()
		return "", nil, err
	}
	return f.Name(), remove, nil
}
