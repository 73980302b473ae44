package buildhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/moby/go-archive"
	dockerbuild "github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
)

// DockerBuilder builds with a Docker Engine (DOCKER_HOST): the daemon pulls
// the fresh base from kiln, builds, and pushes the result to kiln.
type DockerBuilder struct {
	// Limits.Memory bounds each RUN container. Processes are not bounded:
	// the classic builder has no pids limit, and an nproc ulimit counts
	// the host's processes of the same uid (none at all for root).
	Limits Limits
}

// Name implements Builder.
func (DockerBuilder) Name() string { return "docker" }

func dockerClient() (*client.Client, error) {
	return client.New(client.FromEnv, client.WithAPIVersionNegotiation())
}

// dockerAvailable reports whether a Docker daemon answers.
func dockerAvailable(ctx context.Context) error {
	c, err := dockerClient()
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	return err
}

// Build implements Builder.
func (b DockerBuilder) Build(ctx context.Context, job *build.Job, log io.Writer) (digest.Digest, error) {
	c, err := dockerClient()
	if err != nil {
		return "", build.Transient(err)
	}
	defer c.Close()
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return "", build.Transient(fmt.Errorf("docker daemon: %w", err))
	}
	tarball, err := contextTar(job.Rule)
	if err != nil {
		return "", err
	}
	defer tarball.Close()
	image := job.Registry + "/" + job.Staging.String()
	args := map[string]*string{}
	for k, v := range job.Rule.Args {
		args[k] = &v
	}
	// The classic builder dates the image itself; a Dockerfile that
	// declares ARG SOURCE_DATE_EPOCH hands it to its tools.
	if epoch, ok := sourceDateEpoch(ctx, job); ok && args[sourceDateArg] == nil {
		e := strconv.FormatInt(epoch, 10)
		args[sourceDateArg] = &e
	}
	res, err := c.ImageBuild(ctx, tarball, client.ImageBuildOptions{
		Tags:        []string{image},
		Dockerfile:  job.Rule.Dockerfile,
		BuildArgs:   args,
		PullParent:  true, // the base just moved: never build on a stale local copy
		Remove:      true,
		ForceRemove: true,
		NetworkMode: dockerNetwork(job.Rule),
		Memory:      b.Limits.Memory,
		MemorySwap:  b.Limits.Memory, // no swap beyond the memory limit
		Version:     dockerbuild.BuilderV1,
		AuthConfigs: dockerSelfAuth(job),
	})
	if err != nil {
		return "", daemonError("docker build", err)
	}
	if err := streamMessages(res.Body, log); err != nil {
		res.Body.Close()
		return "", fmt.Errorf("docker build: %w", err)
	}
	res.Body.Close()
	fmt.Fprintf(log, "pushing %s\n", image)
	// The daemon insists on an auth header, even an empty one.
	push, err := c.ImagePush(ctx, image, client.ImagePushOptions{RegistryAuth: encodeAuth(dockerSelfAuth(job)[job.Registry])})
	if err != nil {
		return "", daemonError("docker push", err)
	}
	defer push.Close()
	if err := streamMessages(push, log); err != nil {
		return "", fmt.Errorf("docker push: %w", err)
	}
	// The image stays in the daemon's cache for the next build's layers,
	// but its staging tag would only pile up.
	c.ImageRemove(context.WithoutCancel(ctx), image, client.ImageRemoveOptions{})
	return resolveStaging(ctx, job)
}

// dockerNetwork is the network of the build's RUN steps: none unless the
// rule asks for the daemon's default.
func dockerNetwork(r *build.Rule) string {
	if ruleNetwork(r) == "default" {
		return "default"
	}
	return "none"
}

// dockerSelfAuth is the daemon's login to kiln itself: the internal
// builder credential, or none. The daemon dials kiln on its own: over
// HTTPS it trusts kiln's certificate only through its certs.d (or, as
// for every 127.0.0.0/8 registry, skips verification).
func dockerSelfAuth(job *build.Job) map[string]registry.AuthConfig {
	if job.Self.Username == "" {
		return nil
	}
	return map[string]registry.AuthConfig{job.Registry: {
		Username:      job.Self.Username,
		Password:      job.Self.Password,
		ServerAddress: job.Registry,
	}}
}

// encodeAuth is X-Registry-Auth: URL-safe base64 of the JSON login; the
// zero login is "{}", which the daemon accepts as none.
func encodeAuth(a registry.AuthConfig) string {
	b, _ := json.Marshal(a)
	return base64.URLEncoding.EncodeToString(b)
}

// daemonError wraps an error of the Docker Engine API, marking it worth a
// retry when the daemon could not be reached at all.
func daemonError(what string, err error) error {
	err = fmt.Errorf("%s: %w", what, err)
	if client.IsErrConnectionFailed(err) {
		return build.Transient(err)
	}
	return err
}

// streamMessages copies a daemon's JSON message stream to log as text and
// returns the first error message in it.
func streamMessages(r io.Reader, log io.Writer) error {
	dec := jsonDecoder(r)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		switch {
		case m.Error != nil:
			fmt.Fprintf(log, "error: %s\n", m.Error.Message)
			return fmt.Errorf("%s", m.Error.Message)
		case m.Stream != "":
			io.WriteString(log, m.Stream)
		case m.Status != "" && m.Progress == nil:
			if m.ID != "" {
				fmt.Fprintf(log, "%s: %s\n", m.ID, m.Status)
			} else {
				fmt.Fprintln(log, m.Status)
			}
		}
	}
}

// contextTar packs the rule's context directory, leaving out what its
// .dockerignore excludes, as the docker CLI does.
func contextTar(r *build.Rule) (io.ReadCloser, error) {
	var excludes []string
	if f, err := os.Open(filepath.Join(r.Context, ".dockerignore")); err == nil {
		excludes, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf(".dockerignore: %w", err)
		}
	}
	if len(excludes) > 0 {
		// As the docker CLI does: the Dockerfile and .dockerignore always
		// reach the daemon, whatever .dockerignore says.
		excludes = append(excludes, "!"+r.Dockerfile, "!.dockerignore")
	}
	return archive.TarWithOptions(r.Context, &archive.TarOptions{ExcludePatterns: excludes})
}

func jsonDecoder(r io.Reader) *json.Decoder { return json.NewDecoder(r) }
