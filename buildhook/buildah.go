package buildhook

import (
	"context"
	"fmt"
	"io"
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
	args := []string{"bud", "--isolation", "chroot", "--pull=always", "--tls-verify=false",
		"-f", filepath.Join(job.Rule.Context, job.Rule.Dockerfile), "-t", image}
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
	if err := b.cmd(ctx, log, "push", "--tls-verify=false", image, "docker://"+image).Run(); err != nil {
		return "", transient(fmt.Errorf("buildah push: %w", err))
	}
	b.cmd(context.WithoutCancel(ctx), io.Discard, "rmi", image).Run()
	return resolveStaging(ctx, job)
}
