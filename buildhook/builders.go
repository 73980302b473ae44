package buildhook

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
)

// defaultBuilders returns every builder by name. hosts are the names under
// which a FROM line reaches kiln itself; upstreams the mirrored registries.
func defaultBuilders(hosts, upstreams []string) map[string]Builder {
	return map[string]Builder{
		"native":  &NativeBuilder{Hosts: hosts, Upstreams: upstreams},
		"rebase":  &RebaseBuilder{},
		"docker":  DockerBuilder{},
		"buildah": BuildahBuilder{Root: filepath.Join(os.TempDir(), "kiln-buildah")},
	}
}

// chooseBuilder picks the rule's builder and says why. auto means native
// when the Dockerfile runs no commands, else docker when a daemon answers,
// else buildah.
func (s *Service) chooseBuilder(ctx context.Context, r *Rule) (Builder, string, error) {
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
	info, err := ParseDockerfile(content, r.Args)
	if err != nil {
		return nil, "", err
	}
	if len(info.NeedsExec) == 0 {
		return s.builders["native"], "auto: the Dockerfile runs no commands, so it is built in-process", nil
	}
	need := strings.Join(info.NeedsExec, "; ")
	if err := dockerAvailable(ctx); err == nil {
		return s.builders["docker"], "auto: the Dockerfile runs commands (" + need + ") and a Docker daemon answers", nil
	} else if _, lerr := exec.LookPath("buildah"); lerr == nil {
		return s.builders["buildah"], "auto: the Dockerfile runs commands (" + need + "), no Docker daemon answers (" + err.Error() + "), buildah is installed", nil
	}
	return nil, "", fmt.Errorf("the Dockerfile runs commands (%s) but no Docker daemon answers and buildah is not installed", need)
}

// resolveStaging asks kiln, over HTTP like any client, for the digest the
// builder pushed to the staging tag.
func resolveStaging(ctx context.Context, job *Job) (digest.Digest, error) {
	ref, err := name.ParseReference(job.Registry+"/"+job.Staging.String(), name.Insecure)
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(ref, regRemoteOptions(ctx, job, nil, nil)...)
	if err != nil {
		return "", fmt.Errorf("reading the pushed image: %w", err)
	}
	return digest.Digest(desc.Digest.String()), nil
}
