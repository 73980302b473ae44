package buildhook

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/buildhook/dockerfile"
	"kiln/buildhook/native"
	"kiln/buildhook/rebase"
)

// defaultBuilders returns every builder by name. hosts are the names under
// which a FROM line reaches kiln itself; upstreams the mirrored registries;
// limits bound each build (zero values: the configuration's defaults);
// workDir is this kiln's private working directory.
func defaultBuilders(hosts, upstreams []string, limits Limits, workDir string) map[string]build.Builder {
	if limits.Memory <= 0 {
		limits.Memory = 2 << 30
	}
	if limits.Pids <= 0 {
		limits.Pids = 1024
	}
	return map[string]build.Builder{
		"native":  &native.Builder{Hosts: hosts, Upstreams: upstreams, SpoolLimit: limits.Spool},
		"rebase":  &rebase.Builder{},
		"docker":  DockerBuilder{Limits: limits},
		"buildah": BuildahBuilder{Root: buildahRoot(workDir), Limits: limits},
	}
}

// buildahRoot is where buildah keeps its storage in workDir; none
// without one.
func buildahRoot(workDir string) string {
	if workDir == "" {
		return ""
	}
	return filepath.Join(workDir, "buildah")
}

// sandboxer is a builder that runs a build's commands in a sandbox, if
// the machine has what that takes.
type sandboxer interface {
	// SandboxReady says why the sandbox cannot run here, and what to
	// install; nil when it can.
	SandboxReady() error
}

// chooseBuilder picks the rule's builder and says why. auto means native
// when the Dockerfile runs no commands, else docker when a daemon answers
// (trusting that daemon is the operator's choice), else sandboxed buildah,
// else a failure saying what to install: commands never run unsandboxed.
func (s *Service) chooseBuilder(ctx context.Context, r *build.Rule) (build.Builder, string, error) {
	if r.Builder != "auto" {
		b := s.builders[r.Builder]
		if b == nil {
			return nil, "", fmt.Errorf("unknown builder %q", r.Builder)
		}
		return b, "configured", nil
	}
	content, err := os.ReadFile(filepath.Join(r.Context, r.Dockerfile))
	if err != nil {
		return nil, "", err
	}
	info, err := dockerfile.Parse(content, r.Args)
	if err != nil {
		return nil, "", err
	}
	if len(info.NeedsExec) == 0 {
		return s.builders["native"], "auto: the Dockerfile runs no commands, so it is built in-process", nil
	}
	need := strings.Join(info.NeedsExec, "; ")
	derr := dockerAvailable(ctx)
	if derr == nil {
		return s.builders["docker"], "auto: the Dockerfile runs commands (" + need + ") and a Docker daemon answers", nil
	}
	sandboxed := s.builders["buildah"]
	serr := fmt.Errorf("%w: the buildah builder cannot sandbox", errNoSandbox)
	if sb, ok := sandboxed.(sandboxer); ok {
		serr = sb.SandboxReady()
	}
	if serr == nil {
		return sandboxed, "auto: the Dockerfile runs commands (" + need + "), no Docker daemon answers (" + derr.Error() + "), so buildah runs them sandboxed", nil
	}
	return nil, "", fmt.Errorf("the Dockerfile runs commands (%s), no Docker daemon answers (%v), and %w", need, derr, serr)
}

// resolveStaging asks kiln, over HTTP like any client, for the digest the
// builder pushed to the staging tag.
func resolveStaging(ctx context.Context, job *build.Job) (digest.Digest, error) {
	ref, err := name.ParseReference(job.Registry+"/"+job.Staging.String(), name.Insecure)
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(ref, build.RemoteOptions(ctx, job, nil, nil)...)
	if err != nil {
		return "", fmt.Errorf("reading the pushed image: %w", err)
	}
	return digest.Digest(desc.Digest.String()), nil
}
