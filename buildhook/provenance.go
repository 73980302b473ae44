package buildhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
)

// Annotations BuildKit puts on the attestation manifests of an index,
// naming the image they describe.
const (
	attestationRefType   = "vnd.docker.reference.type"
	attestationRefDigest = "vnd.docker.reference.digest"
)

// Finalize reads the image or index the builder pushed to job.Staging,
// adds provenance annotations to every manifest, pushes the result to every
// tag in job.Rule.Tags, deletes the staging tag, and returns the final digest.
//
// The annotations: org.opencontainers.image.base.name (Registry/FinalBase,
// else what the staged manifest or its config label already said),
// org.opencontainers.image.base.digest (on each image the digest of the
// base image of its platform, on an index baseDigest), created (the image
// config's, RFC 3339 UTC; on an index the latest of its images') and
// dev.kiln.build.inputs (inputs, when known). Nothing else varies from one
// build to the next, so the same inputs give the same digest. Attestation
// manifests of an index are kept, pointed at the annotated images. A tag
// moves only once everything it points to is pushed.
func Finalize(ctx context.Context, job *build.Job, baseDigest, inputs digest.Digest, log io.Writer) (digest.Digest, error) {
	if log == nil {
		log = io.Discard
	}
	opts := build.RemoteOptions(ctx, job, nil, nil)
	if len(job.Rule.Tags) == 0 {
		return "", fmt.Errorf("rule %s has no tags", job.Rule.Name)
	}
	staging, err := name.NewTag(job.Registry+"/"+job.Staging.String(), name.Insecure)
	if err != nil {
		return "", err
	}
	desc, err := remote.Get(staging, opts...)
	if err != nil {
		return "", build.RegistryTransient(fmt.Errorf("reading the staged image %s: %w", staging, err))
	}

	common := map[string]string{}
	if inputs != "" {
		common[build.AnnotationBuildInputs] = inputs.String()
	}
	var latest time.Time // the latest image created, for an index
	baseName := ""
	if fb := job.Rule.FinalBase; fb != nil {
		baseName = job.Registry + "/" + fb.String()
	}

	// The base's images by platform, for per-platform base digests.
	var baseIndex *v1.IndexManifest
	if fb := job.Rule.FinalBase; fb != nil && baseDigest != "" {
		ref, err := name.NewDigest(job.Registry+"/"+fb.Repo+"@"+baseDigest.String(), name.Insecure)
		if err != nil {
			return "", err
		}
		bd, err := remote.Get(ref, opts...)
		if err != nil {
			return "", build.RegistryTransient(fmt.Errorf("reading the base %s: %w", ref, err))
		}
		if bd.MediaType.IsIndex() {
			if baseIndex, err = v1.ParseIndexManifest(bytes.NewReader(bd.Manifest)); err != nil {
				return "", err
			}
		}
	}
	annotate := func(img v1.Image, platform *v1.Platform) (v1.Image, error) {
		m, err := img.Manifest()
		if err != nil {
			return nil, build.RegistryTransient(err)
		}
		ann := maps.Clone(common)
		bn := baseName
		if bn == "" {
			bn = m.Annotations[build.AnnotationBaseName]
		}
		if bn == "" {
			if cf, err := img.ConfigFile(); err == nil {
				bn = cf.Config.Labels[build.AnnotationBaseName]
			}
		}
		if bn != "" {
			ann[build.AnnotationBaseName] = bn
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, build.RegistryTransient(err)
		}
		if created := cf.Created.UTC(); !cf.Created.IsZero() {
			ann[build.AnnotationCreated] = created.Format(time.RFC3339)
			if created.After(latest) {
				latest = created
			}
		}
		if platform == nil {
			platform = &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
		}
		if d := platformBaseDigest(baseDigest, baseIndex, platform); d != "" {
			ann[build.AnnotationBaseDigest] = d
		}
		return mutate.Annotations(img, ann).(v1.Image), nil
	}

	var out interface {
		Digest() (v1.Hash, error)
	}
	var push func(ref name.Tag) error
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return "", build.RegistryTransient(err)
		}
		final, err := annotate(img, nil)
		if err != nil {
			return "", err
		}
		out = final
		push = func(ref name.Tag) error { return remote.Write(ref, final, opts...) }
	} else {
		idx, err := desc.ImageIndex()
		if err != nil {
			return "", build.RegistryTransient(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return "", build.RegistryTransient(err)
		}
		moved := map[string]string{} // old child digest → annotated
		var adds []mutate.IndexAddendum
		var rest []v1.Descriptor
		for _, m := range im.Manifests {
			if !build.IsImageType(m.MediaType) || m.Annotations[attestationRefType] != "" || (m.Platform != nil && m.Platform.OS == "unknown") {
				rest = append(rest, m)
				continue
			}
			img, err := idx.Image(m.Digest)
			if err != nil {
				return "", build.RegistryTransient(err)
			}
			final, err := annotate(img, m.Platform)
			if err != nil {
				return "", err
			}
			d, err := final.Digest()
			if err != nil {
				return "", err
			}
			moved[m.Digest.String()] = d.String()
			adds = append(adds, mutate.IndexAddendum{Add: final, Descriptor: v1.Descriptor{
				Platform: m.Platform, Annotations: m.Annotations, URLs: m.URLs, ArtifactType: m.ArtifactType,
			}})
		}
		for _, m := range rest {
			ann := maps.Clone(m.Annotations)
			if nd, ok := moved[ann[attestationRefDigest]]; ok {
				ann[attestationRefDigest] = nd
			}
			var add mutate.Appendable
			if m.MediaType.IsIndex() {
				if add, err = idx.ImageIndex(m.Digest); err != nil {
					return "", build.RegistryTransient(err)
				}
			} else if add, err = idx.Image(m.Digest); err != nil {
				return "", build.RegistryTransient(err)
			}
			adds = append(adds, mutate.IndexAddendum{Add: add, Descriptor: v1.Descriptor{
				Platform: m.Platform, Annotations: ann, URLs: m.URLs, ArtifactType: m.ArtifactType,
			}})
		}
		ann := maps.Clone(common)
		if !latest.IsZero() {
			ann[build.AnnotationCreated] = latest.Format(time.RFC3339)
		}
		if baseName != "" {
			ann[build.AnnotationBaseName] = baseName
		} else if old, err := build.ManifestAnnotations(desc.Manifest); err == nil && old[build.AnnotationBaseName] != "" {
			ann[build.AnnotationBaseName] = old[build.AnnotationBaseName]
		}
		if baseDigest != "" {
			ann[build.AnnotationBaseDigest] = baseDigest.String()
		}
		final := mutate.Annotations(mutate.AppendManifests(mutate.IndexMediaType(empty.Index, desc.MediaType), adds...), ann).(v1.ImageIndex)
		out = final
		push = func(ref name.Tag) error { return remote.WriteIndex(ref, final, opts...) }
	}

	d, err := out.Digest()
	if err != nil {
		return "", err
	}
	for _, t := range job.Rule.Tags {
		ref, err := name.NewTag(job.Registry+"/"+t.String(), name.Insecure)
		if err != nil {
			return "", err
		}
		if err := push(ref); err != nil {
			return "", build.RegistryTransient(fmt.Errorf("pushing %s: %w", t, err))
		}
		fmt.Fprintf(log, "tagged %s -> %s\n", t, d)
	}
	if err := remote.Delete(staging, opts...); err != nil {
		fmt.Fprintf(log, "warning: deleting the staging tag %s: %v\n", job.Staging, err)
	}
	return digest.Digest(d.String()), nil
}

// platformBaseDigest is the digest of the base image for platform: the
// matching child of the base index, or the base itself.
func platformBaseDigest(baseDigest digest.Digest, baseIndex *v1.IndexManifest, platform *v1.Platform) string {
	if baseIndex == nil {
		return baseDigest.String()
	}
	best, score := "", 0
	for _, m := range baseIndex.Manifests {
		if !build.IsImageType(m.MediaType) || platform == nil {
			continue
		}
		if s := build.PlatformMatch(*platform, m.Platform); s > score {
			best, score = m.Digest.String(), s
		}
	}
	if best == "" {
		// No image of that platform: say at least which index it was.
		return baseDigest.String()
	}
	return best
}
