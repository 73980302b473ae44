package buildhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
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
	job  *Job
	log  io.Writer
	opts []remote.Option

	oldRepo string // repository of the base the image was built on
	newRef  name.Digest
	newDesc *remote.Descriptor
}

// Build rebases the image of job.Rule.Tags[0] onto the new base and pushes
// it to job.Staging.
func (b *RebaseBuilder) Build(ctx context.Context, job *Job, log io.Writer) (digest.Digest, error) {
	if log == nil {
		log = io.Discard
	}
	r := &rebaseRun{ctx: ctx, job: job, log: log, opts: []remote.Option{remote.WithContext(ctx)}}
	if b.Transport != nil {
		r.opts = append(r.opts, remote.WithTransport(b.Transport))
	}
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
		return "", regTransient(fmt.Errorf("reading %s: %w", rule.Tags[0], err))
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
			return "", regTransient(fmt.Errorf("resolving %s: %w", newBase, err))
		}
		newDigest = digest.Digest(d.Digest.String())
	}
	r.newRef, err = name.NewDigest(job.Registry+"/"+newBase.Repo+"@"+newDigest.String(), name.Insecure)
	if err != nil {
		return "", err
	}
	r.newDesc, err = remote.Get(r.newRef, r.opts...)
	if err != nil {
		return "", regTransient(fmt.Errorf("reading new base %s: %w", r.newRef, err))
	}
	fmt.Fprintf(log, "rebasing %s from %s@%s onto %s\n", rule.Tags[0], baseName, curAnn[AnnotationBaseDigest], r.newRef)

	staging, err := name.NewTag(job.Registry+"/"+job.Staging.String(), name.Insecure)
	if err != nil {
		return "", err
	}

	if !cur.MediaType.IsIndex() {
		img, err := cur.Image()
		if err != nil {
			return "", regTransient(err)
		}
		out, err := r.rebaseImage(img, curAnn, curAnn[AnnotationBaseDigest], nil)
		if err != nil {
			return "", err
		}
		d, err := out.Digest()
		if err != nil {
			return "", err
		}
		if err := remote.Write(staging, out, r.opts...); err != nil {
			return "", regTransient(fmt.Errorf("pushing %s: %w", staging, err))
		}
		fmt.Fprintf(log, "pushed %s@%s\n", staging, d)
		return digest.Digest(d.String()), nil
	}

	idx, err := cur.ImageIndex()
	if err != nil {
		return "", regTransient(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return "", regTransient(err)
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
			return nil, regTransient(err)
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
			return "", regTransient(err)
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
	d, err := outIdx.Digest()
	if err != nil {
		return "", err
	}
	if err := remote.WriteIndex(staging, outIdx, r.opts...); err != nil {
		return "", regTransient(fmt.Errorf("pushing %s: %w", staging, err))
	}
	fmt.Fprintf(log, "pushed %s@%s (index of %d platforms)\n", staging, d, len(adds))
	return digest.Digest(d.String()), nil
}

func rbAnnotations(manifest []byte) (map[string]string, error) {
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, err
	}
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	return m.Annotations, nil
}

func rbImageAnnotations(img v1.Image) (map[string]string, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, regTransient(err)
	}
	if m.Annotations == nil {
		return map[string]string{}, nil
	}
	return maps.Clone(m.Annotations), nil
}

// newBaseFor returns the new base image for platform (nil: a single image).
func (r *rebaseRun) newBaseFor(platform *v1.Platform) (v1.Image, string, error) {
	if !r.newDesc.MediaType.IsIndex() {
		img, err := r.newDesc.Image()
		if err != nil {
			return nil, "", regTransient(err)
		}
		return img, r.newDesc.Digest.String(), nil
	}
	idx, err := r.newDesc.ImageIndex()
	if err != nil {
		return nil, "", regTransient(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, "", regTransient(err)
	}
	if platform == nil {
		return nil, "", rbNotApplicable("the new base is an index but the image is a single platform image without platform")
	}
	for _, m := range im.Manifests {
		if ncIsImageType(m.MediaType) && ncPlatformMatch(*platform, m.Platform) == 2 {
			img, err := idx.Image(m.Digest)
			if err != nil {
				return nil, "", regTransient(err)
			}
			return img, m.Digest.String(), nil
		}
	}
	return nil, "", rbNotApplicable("the new base has no %s image", ncPlatformString(*platform))
}

// rebaseImage swaps img's old base (oldDigest in the old base repository)
// for the new base of its platform.
func (r *rebaseRun) rebaseImage(img v1.Image, ann map[string]string, oldDigest string, platform *v1.Platform) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, regTransient(err)
	}
	if platform == nil && cf.OS != "" {
		platform = &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
	}
	oldRef, err := name.NewDigest(r.job.Registry+"/"+r.oldRepo+"@"+oldDigest, name.Insecure)
	if err != nil {
		return nil, rbNotApplicable("%s %q: %v", AnnotationBaseDigest, oldDigest, err)
	}
	oldDesc, err := remote.Get(oldRef, r.opts...)
	if rbIsNotFound(err) {
		return nil, rbNotApplicable("the old base %s is gone", oldRef)
	}
	if err != nil {
		return nil, regTransient(fmt.Errorf("reading old base %s: %w", oldRef, err))
	}
	var oldImg v1.Image
	if oldDesc.MediaType.IsIndex() {
		// The annotation named the index: take the image's platform.
		oidx, err := oldDesc.ImageIndex()
		if err != nil {
			return nil, regTransient(err)
		}
		oim, err := oidx.IndexManifest()
		if err != nil {
			return nil, regTransient(err)
		}
		for _, m := range oim.Manifests {
			if platform != nil && ncIsImageType(m.MediaType) && ncPlatformMatch(*platform, m.Platform) == 2 {
				if oldImg, err = oidx.Image(m.Digest); err != nil {
					return nil, regTransient(err)
				}
				break
			}
		}
		if oldImg == nil {
			return nil, rbNotApplicable("the old base index %s has no image for the image's platform", oldRef)
		}
	} else if oldImg, err = oldDesc.Image(); err != nil {
		return nil, regTransient(err)
	}
	newImg, newDigest, err := r.newBaseFor(platform)
	if err != nil {
		return nil, err
	}

	layers, err := img.Layers()
	if err != nil {
		return nil, regTransient(err)
	}
	oldLayers, err := oldImg.Layers()
	if err != nil {
		return nil, regTransient(err)
	}
	newLayers, err := newImg.Layers()
	if err != nil {
		return nil, regTransient(err)
	}
	if len(oldLayers) > len(layers) {
		return nil, rbNotApplicable("the image has %d layers, fewer than its old base's %d", len(layers), len(oldLayers))
	}
	for i, l := range oldLayers {
		od, err := l.Digest()
		if err != nil {
			return nil, regTransient(err)
		}
		id, err := layers[i].Digest()
		if err != nil {
			return nil, regTransient(err)
		}
		if od != id {
			return nil, rbNotApplicable("layer %d of the image is %s, not the old base's %s", i, id, od)
		}
	}
	oldCf, err := oldImg.ConfigFile()
	if err != nil {
		return nil, regTransient(err)
	}
	newCf, err := newImg.ConfigFile()
	if err != nil {
		return nil, regTransient(err)
	}

	// History: the image's entries above the old base's.
	top := layers[len(oldLayers):]
	var topHist []v1.History
	switch {
	case len(cf.History) == 0:
	case len(oldCf.History) <= len(cf.History) && rbNonEmpty(cf.History[:len(oldCf.History)]) == len(oldLayers) &&
		rbNonEmpty(cf.History[len(oldCf.History):]) == len(top):
		topHist = cf.History[len(oldCf.History):]
	default:
		return nil, rbNotApplicable("the image's history does not start with its old base's")
	}
	newHist := newCf.History
	if len(cf.History) > 0 && rbNonEmpty(newHist) != len(newLayers) {
		newHist = make([]v1.History, len(newLayers)) // a base without history
	}
	if len(cf.History) == 0 && len(newHist) > 0 {
		topHist = make([]v1.History, len(top))
	}
	var adds []mutate.Addendum
	addAll := func(hist []v1.History, ls []v1.Layer) {
		k := 0
		for _, h := range hist {
			a := mutate.Addendum{History: h}
			if !h.EmptyLayer {
				a.Layer = ls[k]
				k++
			}
			adds = append(adds, a)
		}
		for ; k < len(ls); k++ {
			adds = append(adds, mutate.Addendum{Layer: ls[k]})
		}
	}
	addAll(newHist, newLayers)
	addAll(topHist, top)

	mt, err := img.MediaType()
	if err != nil {
		return nil, regTransient(err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, regTransient(err)
	}
	start := mutate.ConfigMediaType(mutate.MediaType(empty.Image, mt), m.Config.MediaType)
	out, err := mutate.Append(start, adds...)
	if err != nil {
		return nil, err
	}
	outCf, err := out.ConfigFile()
	if err != nil {
		return nil, err
	}
	outCf = outCf.DeepCopy()
	outCf.Config = rbMergeConfig(cf.Config, oldCf.Config, newCf.Config)
	outCf.Created = cf.Created
	outCf.Author = cf.Author
	rbPick := func(img, old, nw string) string {
		if img == old {
			return nw
		}
		return img
	}
	outCf.OS = rbPick(cf.OS, oldCf.OS, newCf.OS)
	outCf.Architecture = rbPick(cf.Architecture, oldCf.Architecture, newCf.Architecture)
	outCf.Variant = rbPick(cf.Variant, oldCf.Variant, newCf.Variant)
	outCf.OSVersion = rbPick(cf.OSVersion, oldCf.OSVersion, newCf.OSVersion)
	if reflect.DeepEqual(cf.OSFeatures, oldCf.OSFeatures) {
		outCf.OSFeatures = slices.Clone(newCf.OSFeatures)
	} else {
		outCf.OSFeatures = slices.Clone(cf.OSFeatures)
	}
	if out, err = mutate.ConfigFile(out, outCf); err != nil {
		return nil, err
	}
	newAnn := maps.Clone(ann)
	if newAnn == nil {
		newAnn = map[string]string{}
	}
	newAnn[AnnotationBaseDigest] = newDigest
	out = mutate.Annotations(out, newAnn).(v1.Image)

	pl := "image"
	if platform != nil {
		pl = ncPlatformString(*platform)
	}
	fmt.Fprintf(r.log, "%s: %d old base layers -> %d new base layers, %d own layers kept\n", pl, len(oldLayers), len(newLayers), len(top))
	return out, nil
}

func rbNonEmpty(h []v1.History) int {
	n := 0
	for _, e := range h {
		if !e.EmptyLayer {
			n++
		}
	}
	return n
}

// rbMergeConfig is the image's config with the new base's values wherever
// the image still had the old base's (it did not set its own).
func rbMergeConfig(img, old, nw v1.Config) v1.Config {
	out := *img.DeepCopy()
	same := func(a, b any) bool { return reflect.DeepEqual(a, b) }

	// Env, by key, in the image's order, then what the new base added.
	oldEnv, newEnv := rbEnvMap(old.Env), rbEnvMap(nw.Env)
	out.Env = nil
	seen := map[string]bool{}
	for _, kv := range img.Env {
		k, v, _ := strings.Cut(kv, "=")
		seen[k] = true
		if ov, ok := oldEnv[k]; ok && ov == v {
			if nv, ok := newEnv[k]; ok {
				out.Env = append(out.Env, k+"="+nv)
			}
			continue
		}
		out.Env = append(out.Env, kv)
	}
	for _, kv := range nw.Env {
		k, _, _ := strings.Cut(kv, "=")
		if _, inOld := oldEnv[k]; !seen[k] && !inOld {
			out.Env = append(out.Env, kv)
		}
	}

	// Labels, by key.
	if img.Labels != nil || nw.Labels != nil {
		labels := map[string]string{}
		for k, v := range img.Labels {
			if ov, ok := old.Labels[k]; ok && ov == v {
				if nv, ok := nw.Labels[k]; ok {
					labels[k] = nv
				}
				continue
			}
			labels[k] = v
		}
		for k, v := range nw.Labels {
			_, inImg := img.Labels[k]
			_, inOld := old.Labels[k]
			if !inImg && !inOld {
				labels[k] = v
			}
		}
		out.Labels = labels
		if len(labels) == 0 {
			out.Labels = nil
		}
	}

	out.ExposedPorts = rbMergeSet(img.ExposedPorts, old.ExposedPorts, nw.ExposedPorts)
	out.Volumes = rbMergeSet(img.Volumes, old.Volumes, nw.Volumes)

	if img.User == old.User {
		out.User = nw.User
	}
	if img.WorkingDir == old.WorkingDir {
		out.WorkingDir = nw.WorkingDir
	}
	if img.StopSignal == old.StopSignal {
		out.StopSignal = nw.StopSignal
	}
	if same(img.Shell, old.Shell) {
		out.Shell = slices.Clone(nw.Shell)
	}
	if same(img.Healthcheck, old.Healthcheck) {
		out.Healthcheck = nil
		if nw.Healthcheck != nil {
			h := *nw.Healthcheck
			h.Test = slices.Clone(h.Test)
			out.Healthcheck = &h
		}
	}
	// An ENTRYPOINT of the image's own resets CMD, as in a build.
	ownEntrypoint := !same(img.Entrypoint, old.Entrypoint)
	if !ownEntrypoint {
		out.Entrypoint = slices.Clone(nw.Entrypoint)
	}
	if !ownEntrypoint && same(img.Cmd, old.Cmd) {
		out.Cmd = slices.Clone(nw.Cmd)
		out.ArgsEscaped = nw.ArgsEscaped
	}
	return out
}

func rbEnvMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// rbMergeSet keeps what the image added, drops what only the old base had,
// and adds what the new base has.
func rbMergeSet(img, old, nw map[string]struct{}) map[string]struct{} {
	out := map[string]struct{}{}
	for k := range img {
		if _, inOld := old[k]; inOld {
			if _, inNew := nw[k]; !inNew {
				continue
			}
		}
		out[k] = struct{}{}
	}
	for k := range nw {
		out[k] = struct{}{}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

var (
	_ Builder = (*RebaseBuilder)(nil)
	_ Builder = (*NativeBuilder)(nil)
)
