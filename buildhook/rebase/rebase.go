package rebase

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
)

// ErrNotApplicable is wrapped by Builder.Build when the rule's image
// cannot be rebased (no image yet, no base annotations, layers that do not
// start with the old base's, a trigger that is not the final base): the
// caller falls back to a full build.
var ErrNotApplicable = errors.New("rebase not applicable")

// Builder does not build: it takes the rule's current image (its first
// tag), whose base annotations say which base it was built on, and swaps
// the old base's layers for the new base's, carrying the new base's config
// (Env, User, WorkingDir, Entrypoint, Cmd, Labels, ports, volumes, stop
// signal, platform) wherever the image had kept the old base's value.
// Indexes are rebased platform by platform. The zero value is ready.
type Builder struct {
	// Transport for registry calls; nil means remote.DefaultTransport.
	Transport http.RoundTripper
}

// Name is "rebase".
func (b *Builder) Name() string { return "rebase" }

func notApplicable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotApplicable, fmt.Sprintf(format, args...))
}

// run is one Build's state.
type run struct {
	ctx    context.Context
	job    *build.Job
	log    io.Writer
	remote *build.Remote
	opts   []remote.Option // remote.Options

	oldRepo string // repository of the base the image was built on
	newRef  name.Digest
	newDesc *remote.Descriptor
}

// Build rebases the image of job.Rule.Tags[0] onto the new base and pushes
// it to job.Staging.
func (b *Builder) Build(ctx context.Context, job *build.Job, log io.Writer) (digest.Digest, error) {
	out, err := b.BuildOutput(ctx, job, log)
	if err != nil {
		return "", err
	}
	return out.Remote.PushOutput(log, job, out)
}

// BuildOutput rebases the image of job.Rule.Tags[0] onto the new base,
// pushes the blobs of the result to job.Staging's repository and returns
// the result, its manifests not pushed.
func (b *Builder) BuildOutput(ctx context.Context, job *build.Job, log io.Writer) (*build.Output, error) {
	if log == nil {
		log = io.Discard
	}
	rem := build.NewRemote(ctx, job, nil, b.Transport)
	r := &run{ctx: ctx, job: job, log: log, remote: rem, opts: rem.Options}
	rule := job.Rule
	if len(rule.Tags) == 0 {
		return nil, notApplicable("the rule has no tags")
	}
	curRef, err := name.NewTag(job.Registry+"/"+rule.Tags[0].String(), name.Insecure)
	if err != nil {
		return nil, err
	}
	cur, err := remote.Get(curRef, r.opts...)
	if build.IsNotFound(err) {
		return nil, notApplicable("%s does not exist yet", rule.Tags[0])
	}
	if err != nil {
		return nil, build.RegistryTransient(fmt.Errorf("reading %s: %w", rule.Tags[0], err))
	}
	curAnn, err := build.ManifestAnnotations(cur.Manifest)
	if err != nil {
		return nil, err
	}

	// Which base it was built on, and which base moved.
	baseName := curAnn[build.AnnotationBaseName]
	if baseName == "" || curAnn[build.AnnotationBaseDigest] == "" {
		return nil, notApplicable("%s has no %s / %s annotations", rule.Tags[0], build.AnnotationBaseName, build.AnnotationBaseDigest)
	}
	oldBase, err := name.ParseReference(baseName)
	if err != nil {
		return nil, notApplicable("%s %q: %v", build.AnnotationBaseName, baseName, err)
	}
	r.oldRepo = oldBase.Context().RepositoryStr()
	oldTag, _ := oldBase.(name.Tag)

	newBase := job.Trigger.Ref
	newDigest := job.Trigger.Digest
	if newBase.Repo == "" {
		if rule.FinalBase == nil {
			return nil, notApplicable("no trigger and no final base in this registry")
		}
		newBase = *rule.FinalBase
	}
	if rule.FinalBase != nil && *rule.FinalBase != newBase {
		return nil, notApplicable("%s moved, but the final stage is built on %s", newBase, *rule.FinalBase)
	}
	if newBase.Repo != r.oldRepo || (oldTag.TagStr() != "" && oldTag.TagStr() != newBase.Tag) {
		return nil, notApplicable("%s moved, but %s was built on %s", newBase, rule.Tags[0], baseName)
	}
	if newDigest == "" {
		tag, err := name.NewTag(job.Registry+"/"+newBase.String(), name.Insecure)
		if err != nil {
			return nil, err
		}
		d, err := remote.Head(tag, r.opts...)
		if err != nil {
			return nil, build.RegistryTransient(fmt.Errorf("resolving %s: %w", newBase, err))
		}
		newDigest = digest.Digest(d.Digest.String())
	}
	r.newRef, err = name.NewDigest(job.Registry+"/"+newBase.Repo+"@"+newDigest.String(), name.Insecure)
	if err != nil {
		return nil, err
	}
	r.newDesc, err = remote.Get(r.newRef, r.opts...)
	if err != nil {
		return nil, build.RegistryTransient(fmt.Errorf("reading new base %s: %w", r.newRef, err))
	}
	fmt.Fprintf(log, "rebasing %s from %s@%s onto %s\n", rule.Tags[0], baseName, curAnn[build.AnnotationBaseDigest], r.newRef)

	staging, err := build.StagingTag(job)
	if err != nil {
		return nil, err
	}

	if !cur.MediaType.IsIndex() {
		img, err := cur.Image()
		if err != nil {
			return nil, build.RegistryTransient(err)
		}
		out, err := r.rebaseImage(img, curAnn, curAnn[build.AnnotationBaseDigest], nil)
		if err != nil {
			return nil, err
		}
		return r.output(staging, &build.Output{Image: out})
	}

	idx, err := cur.ImageIndex()
	if err != nil {
		return nil, build.RegistryTransient(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, build.RegistryTransient(err)
	}
	// The old base index, for children without their own annotation.
	var oldIndex *v1.IndexManifest
	oldIndexFor := func() (*v1.IndexManifest, error) {
		if oldIndex != nil {
			return oldIndex, nil
		}
		ref, err := name.NewDigest(job.Registry+"/"+r.oldRepo+"@"+curAnn[build.AnnotationBaseDigest], name.Insecure)
		if err != nil {
			return nil, notApplicable("%s: %v", build.AnnotationBaseDigest, err)
		}
		desc, err := remote.Get(ref, r.opts...)
		if build.IsNotFound(err) {
			return nil, notApplicable("the old base %s is gone", ref)
		}
		if err != nil {
			return nil, build.RegistryTransient(err)
		}
		if !desc.MediaType.IsIndex() {
			return &v1.IndexManifest{Manifests: []v1.Descriptor{desc.Descriptor}}, nil
		}
		oldIndex, err = v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
		return oldIndex, err
	}

	var adds []mutate.IndexAddendum
	for _, m := range im.Manifests {
		if !build.IsImageType(m.MediaType) || m.Platform == nil || m.Platform.OS == "unknown" {
			fmt.Fprintf(log, "dropping %s (%s): it describes the old image\n", m.Digest, m.MediaType)
			continue
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			return nil, build.RegistryTransient(err)
		}
		ann, err := imageAnnotations(img)
		if err != nil {
			return nil, err
		}
		oldDigest := ann[build.AnnotationBaseDigest]
		if oldDigest == "" {
			oi, err := oldIndexFor()
			if err != nil {
				return nil, err
			}
			for _, om := range oi.Manifests {
				if build.IsImageType(om.MediaType) && (om.Platform == nil || build.PlatformMatch(*m.Platform, om.Platform) == 2) {
					oldDigest = om.Digest.String()
					break
				}
			}
			if oldDigest == "" {
				return nil, notApplicable("the old base has no %s image", build.PlatformString(*m.Platform))
			}
		}
		out, err := r.rebaseImage(img, ann, oldDigest, m.Platform)
		if err != nil {
			return nil, err
		}
		desc := v1.Descriptor{Platform: m.Platform, Annotations: m.Annotations}
		adds = append(adds, mutate.IndexAddendum{Add: out, Descriptor: desc})
	}
	if len(adds) == 0 {
		return nil, notApplicable("%s has no platform images", rule.Tags[0])
	}
	outIdx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, cur.MediaType), adds...)
	idxAnn := maps.Clone(curAnn)
	idxAnn[build.AnnotationBaseDigest] = r.newDesc.Digest.String()
	outIdx = mutate.Annotations(outIdx, idxAnn).(v1.ImageIndex)
	return r.output(staging, &build.Output{Index: outIdx})
}

// output pushes the blobs of out to staging's repository and returns it.
func (r *run) output(staging name.Tag, out *build.Output) (*build.Output, error) {
	out.Remote = r.remote
	if err := r.remote.PushBlobs(staging.Context(), out); err != nil {
		return nil, err
	}
	return out, nil
}

var _ build.InProcess = (*Builder)(nil)
