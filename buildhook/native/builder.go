package native

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/buildhook/dockerfile"
)

// Builder builds Dockerfiles that run no commands in-process, with
// go-containerregistry: it starts from the base image's config and layers,
// applies ARG, ENV, LABEL, WORKDIR, COPY, ADD (local files), USER, EXPOSE,
// VOLUME, ENTRYPOINT, CMD, SHELL, STOPSIGNAL, HEALTHCHECK and ONBUILD, one
// layer per COPY, and pushes the result to the job's staging tag. A base
// that is an index gives an index with the same platforms.
//
// Builds are reproducible: the same Dockerfile, context, arguments and
// bases give the same digest. Files get mtime SOURCE_DATE_EPOCH (a build
// argument) or the Unix epoch, and owner 0:0 unless --chown; the image's
// created time is SOURCE_DATE_EPOCH or the base image's.
//
// The zero value is ready to use; a Builder may run several builds
// at once and shares what it read of base layers between them.
type Builder struct {
	// Hosts are the names under which clients reach this registry
	// (RegistryHosts): a FROM naming one is pulled from Job.Registry.
	// Names equal to Job.Registry, and localhost, 127.0.0.1 and [::1]
	// with Job.Registry's port, always are. When Hosts is empty, a FROM
	// whose repository and tag are one of the rule's Bases is too.
	Hosts []string
	// Upstreams are the registries kiln mirrors (e.g. docker.io): a FROM
	// naming one is pulled through kiln's cache, where the tag watcher
	// keeps it current, as <upstream>/<repo>.
	Upstreams []string
	// Keychain authenticates pulls from other registries; nil means
	// anonymous.
	Keychain authn.Keychain
	// Transport for registry calls; nil means remote.DefaultTransport.
	Transport  http.RoundTripper
	SpoolLimit int64

	layers layerCache
}

// Name is "native".
func (b *Builder) Name() string { return "native" }

// historyComment marks the history entries the native builder adds.
const historyComment = "kiln.native.v0"

// Build builds job.Rule and pushes the result to job.Staging.
func (b *Builder) Build(ctx context.Context, job *build.Job, log io.Writer) (digest.Digest, error) {
	out, err := b.BuildOutput(ctx, job, log)
	if err != nil {
		return "", err
	}
	return out.Remote.PushOutput(log, job, out)
}

// BuildOutput builds job.Rule, pushes the result's blobs to job.Staging's
// repository and returns the result, its manifests not pushed.
func (b *Builder) BuildOutput(ctx context.Context, job *build.Job, log io.Writer) (*build.Output, error) {
	if log == nil {
		log = io.Discard
	}
	br, err := b.start(ctx, job, log)
	if err != nil {
		return nil, err
	}
	// The spool holding the new layers goes with br: their blobs are
	// pushed before it does.
	defer br.close()

	tg, err := br.targets()
	if err != nil {
		return nil, err
	}
	staging, err := build.StagingTag(job)
	if err != nil {
		return nil, fmt.Errorf("staging tag: %w", err)
	}
	out := &build.Output{Remote: br.remote}
	if !tg.index {
		if out.Image, err = br.run(tg.platforms[0], ""); err != nil {
			return nil, err
		}
	} else {
		var adds []mutate.IndexAddendum
		for _, p := range tg.platforms {
			img, err := br.run(p, "["+build.PlatformString(p)+"] ")
			if err != nil {
				return nil, err
			}
			desc := v1.Descriptor{Platform: &p}
			adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: desc})
		}
		out.Index = mutate.AppendManifests(mutate.IndexMediaType(empty.Index, tg.indexType), adds...)
	}
	if err := br.remote.PushBlobs(staging.Context(), out); err != nil {
		return nil, err
	}
	return out, nil
}

var _ build.InProcess = (*Builder)(nil)

// buildRun is one run of the native builder.
type buildRun struct {
	b          *Builder
	ctx        context.Context
	job        *build.Job
	log        io.Writer
	remote     *build.Remote
	remoteOpts []remote.Option // remote.Options

	dockerfile []byte
	file       *dockerfile.File     // expanding changes it: read again for each platform
	stages     []instructions.Stage // file.Stages
	shlex      *shell.Lex
	context    *buildContext

	tmp     string
	release func() // removes tmp
	spool   *spoolFile
	writer  *layerWriter
	epoch   *time.Time

	mu     sync.Mutex
	layers map[string]v1.Layer // by plan key: one object for every platform
	descs  map[string]*remote.Descriptor
	bases  map[v1.Hash]*fsBase

	prefix      string
	step, steps int
}

func (b *Builder) start(ctx context.Context, job *build.Job, log io.Writer) (*buildRun, error) {
	r := job.Rule
	df := r.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	dfPath := filepath.Join(r.Context, df)
	content, err := os.ReadFile(dfPath)
	if err != nil {
		return nil, err
	}
	file, err := dockerfile.Read(content)
	if err != nil {
		return nil, err
	}
	cctx, err := openContext(r.Context, dfPath)
	if err != nil {
		return nil, err
	}
	br := &buildRun{
		b: b, ctx: ctx, job: job, log: log,
		dockerfile: content, file: file, stages: file.Stages,
		shlex:   file.Lex(),
		context: cctx,
		layers:  map[string]v1.Layer{},
		descs:   map[string]*remote.Descriptor{},
		bases:   map[v1.Hash]*fsBase{},
	}
	br.remote = build.NewRemote(ctx, job, b.Keychain, b.Transport)
	br.remoteOpts = br.remote.Options
	if v, ok := r.Args["SOURCE_DATE_EPOCH"]; ok && v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH %q: not a number of seconds", v)
		}
		t := time.Unix(n, 0).UTC()
		br.epoch = &t
	}

	// Refuse what needs a container before pulling anything.
	_, reach, err := br.reachableFor(hostPlatform())
	if err != nil {
		return nil, err
	}
	for i, st := range br.stages {
		if !reach[i] {
			continue
		}
		for _, c := range st.Commands {
			if _, ok := c.(*instructions.RunCommand); ok {
				return nil, runError(c)
			}
		}
	}

	br.tmp, br.release, err = newSpoolDir()
	if err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(br.tmp, "spool"))
	if err != nil {
		br.release()
		return nil, err
	}
	limit := b.SpoolLimit
	if limit <= 0 {
		limit = defaultSpoolLimit
	}
	budget := &diskBudget{limit: limit}
	br.spool = &spoolFile{f: f, budget: budget}
	mtime := time.Unix(0, 0).UTC()
	if br.epoch != nil {
		mtime = *br.epoch
	}
	br.writer = &layerWriter{dir: br.tmp, mtime: mtime, budget: budget}
	return br, nil
}

func (br *buildRun) close() {
	if br.spool != nil {
		br.spool.f.Close()
	}
	if br.release != nil {
		br.release()
	}
}
