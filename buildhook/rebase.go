package buildhook

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
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
)

// ErrRebaseNotApplicable is wrapped by RebaseBuilder.Build when the rule's
// image cannot be rebased (no image yet, no base annotations, layers that
// do not start with the old base's, a trigger that is not the final
// base): the caller falls back to a full build.
var ErrRebaseNotApplicable = errors.New("rebase not applicable")

// Annotation keys of the provenance kiln writes (see Finalize).
const (
	AnnotationBaseName     = "org.opencontainers.image.base.name"
	AnnotationBaseDigest   = "org.opencontainers.image.base.digest"
	AnnotationCreated      = "org.opencontainers.image.created"
	AnnotationBuildID      = "dev.kiln.build.id"
	AnnotationBuildTrigger = "dev.kiln.build.trigger"
)

// RebaseBuilder does not build: it takes the rule's current image (its
// first tag), whose base annotations say which base it was built on, and
// swaps the old base's layers for the new base's, carrying the new base's
// config (Env, User, WorkingDir, Entrypoint, Cmd, Labels, ports, volumes,
// stop signal, platform) wherever the image had kept the old base's value.
// Indexes are rebased platform by platform. The zero value is ready.
type RebaseBuilder struct {
	// Transport for registry calls; nil means remote.DefaultTransport.
	Transport http.RoundTripper
}

// Name is "rebase".
func (b *RebaseBuilder) Name() string { return "rebase" }

func rbNotApplicable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRebaseNotApplicable, fmt.Sprintf(format, args...))
}

// rbIsNotFound reports a registry's 404 / *_UNKNOWN answer.
func rbIsNotFound(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range te.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode || d.Code == transport.BlobUnknownErrorCode {
			return true
		}
	}
	return false
}

type rebaseRun struct {
	ctx  context.Context
	job  *build.Job
	log  io.Writer
	opts []remote.Option

	oldRepo string // repository of the base the image was built on
	newRef  name.Digest
	newDesc *remote.Descriptor
}

// Build rebases the image of job.Rule.Tags[0] onto the new base and pushes
// it to job.Staging.
func (b *RebaseBuilder) Build(ctx context.Context, job *build.Job, log io.Writer) (digest.Digest, error) {
	if log == nil {
		log = io.Discard
	}
	r := &rebaseRun{ctx: ctx, job: job, log: log, opts: build.RemoteOptions(ctx, job, nil, b.Transport)}
	rule := job.Rule
	if len(rule.Tags) == 0 {
		return "", rbNotApplicable("the rule has no tags")
	}
	curRef, err := name.NewTag(job.Registry+"/"+rule.Tags[0].String(), name.Insecure)
	if err != nil {
		return "", err
	}
	cur, err := remote.Get(curRef, r.opts...)
	if rbIsNotFound(err) {
		return "", rbNotApplicable("%s does not exist yet", rule.Tags[0])
	}
	if err != nil {
		return "", build.RegistryTransient(fmt.Errorf("reading %s: %w", rule.Tags[0], err))
	}
	curAnn, err := rbAnnotations(cur.Manifest)
	if err != nil {
		return "", err
	}

	// Which base it was built on, and which base moved.
	baseName := curAnn[AnnotationBaseName]
	if baseName == "" || curAnn[AnnotationBaseDigest] == "" {
		return "", rbNotApplicable("%s has no %s / %s annotations", rule.Tags[0], AnnotationBaseName, AnnotationBaseDigest)
	}
	oldBase, err := name.ParseReference(baseName)
	if err != nil {
		return "", rbNotApplicable("%s %q: %v", AnnotationBaseName, baseName, err)
	}
	r.oldRepo = oldBase.Context().RepositoryStr()
	oldTag, _ := oldBase.(name.Tag)

	newBase := job.Trigger.Ref
	newDigest := job.Trigger.Digest
	if newBase.Repo == "" {
		if rule.FinalBase == nil {
			return "", rbNotApplicable("no trigger and no final base in this registry")
		}
		newBase = *rule.FinalBase
	}
	if rule.FinalBase != nil && *rule.FinalBase != newBase {
		return "", rbNotApplicable("%s moved, but the final stage is built on %s", newBase, *rule.FinalBase)
	}
	if newBase.Repo != r.oldRepo || (oldTag.TagStr() != "" && oldTag.TagStr() != newBase.Tag) {
		return "", rbNotApplicable("%s moved, but %s was built on %s", newBase, rule.Tags[0], baseName)
	}
	if newDigest == "" {
		tag, err := name.NewTag(job.Registry+"/"+newBase.String(), name.Insecure)
		if err != nil {
			return "", err
		}
		d, err := remote.Head(tag, r.opts...)
		if err != nil {
			return "", build.RegistryTransient(fmt.Errorf("resolving %s: %w", newBase, err))
		}
		newDigest = digest.Digest(d.Digest.String())
	}
	r.newRef, err = name.NewDigest(job.Registry+"/"+newBase.Repo+"@"+newDigest.String(), name.Insecure)
	if err != nil {
		return "", err
	}
	r.newDesc, err = remote.Get(r.newRef, r.opts...)
	if err != nil {
		return "", build.RegistryTransient(fmt.Errorf("reading new base %s: %w", r.newRef, err))
	}
	fmt.Fprintf(log, "rebasing %s from %s@%s onto %s\n", rule.Tags[0], baseName, curAnn[AnnotationBaseDigest], r.newRef)

	staging, err := build.StagingTag(job)
	if err != nil {
		return "", err
	}

	if !cur.MediaType.IsIndex() {
		img, err := cur.Image()
		if err != nil {
			return "", build.RegistryTransient(err)
		}
		out, err := r.rebaseImage(img, curAnn, curAnn[AnnotationBaseDigest], nil)
		if err != nil {
			return "", err
		}
		return build.PushImage(log, staging, out, r.opts)
	}

	idx, err := cur.ImageIndex()
	if err != nil {
		return "", build.RegistryTransient(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return "", build.RegistryTransient(err)
	}
	// The old base index, for children without their own annotation.
	var oldIndex *v1.IndexManifest
	oldIndexFor := func() (*v1.IndexManifest, error) {
		if oldIndex != nil {
			return oldIndex, nil
		}
		ref, err := name.NewDigest(job.Registry+"/"+r.oldRepo+"@"+curAnn[AnnotationBaseDigest], name.Insecure)
		if err != nil {
			return nil, rbNotApplicable("%s: %v", AnnotationBaseDigest, err)
		}
		desc, err := remote.Get(ref, r.opts...)
		if rbIsNotFound(err) {
			return nil, rbNotApplicable("the old base %s is gone", ref)
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
		if !ncIsImageType(m.MediaType) || m.Platform == nil || m.Platform.OS == "unknown" {
			fmt.Fprintf(log, "dropping %s (%s): it describes the old image\n", m.Digest, m.MediaType)
			continue
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			return "", build.RegistryTransient(err)
		}
		ann, err := rbImageAnnotations(img)
		if err != nil {
			return "", err
		}
		oldDigest := ann[AnnotationBaseDigest]
		if oldDigest == "" {
			oi, err := oldIndexFor()
			if err != nil {
				return "", err
			}
			for _, om := range oi.Manifests {
				if ncIsImageType(om.MediaType) && (om.Platform == nil || ncPlatformMatch(*m.Platform, om.Platform) == 2) {
					oldDigest = om.Digest.String()
					break
				}
			}
			if oldDigest == "" {
				return "", rbNotApplicable("the old base has no %s image", ncPlatformString(*m.Platform))
			}
		}
		out, err := r.rebaseImage(img, ann, oldDigest, m.Platform)
		if err != nil {
			return "", err
		}
		desc := v1.Descriptor{Platform: m.Platform, Annotations: m.Annotations}
		adds = append(adds, mutate.IndexAddendum{Add: out, Descriptor: desc})
	}
	if len(adds) == 0 {
		return "", rbNotApplicable("%s has no platform images", rule.Tags[0])
	}
	outIdx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, cur.MediaType), adds...)
	idxAnn := maps.Clone(curAnn)
	idxAnn[AnnotationBaseDigest] = r.newDesc.Digest.String()
	outIdx = mutate.Annotations(outIdx, idxAnn).(v1.ImageIndex)
	return build.PushIndex(log, staging, outIdx, len(adds), r.opts)
}

var (
	_ build.Builder = (*RebaseBuilder)(nil)
	_ build.Builder = (*NativeBuilder)(nil)
)
