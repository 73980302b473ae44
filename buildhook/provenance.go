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

// Finalize adds provenance annotations to every manifest of what the
// builder made, pushes the result to every tag in job.Rule.Tags and
// returns the final digest. What the builder made is out when it ran in
// kiln's process (its blobs pushed to job.Staging's repository, its
// manifests nowhere), else the image or index it pushed to job.Staging,
// which Finalize reads and, once the tags moved, deletes.
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
func Finalize(ctx context.Context, job *build.Job, out *build.Output, baseDigest, inputs digest.Digest, log io.Writer) (digest.Digest, error) {
	if log == nil {
		log = io.Discard
	}
	if len(job.Rule.Tags) == 0 {
		return "", fmt.Errorf("rule %s has no tags", job.Rule.Name)
	}
	staging, err := name.NewTag(job.Registry+"/"+job.Staging.String(), name.Insecure)
	if err != nil {
		return "", err
	}
	staged := out == nil
	if staged {
		if out, err = readStaged(ctx, job, staging); err != nil {
			return "", err
		}
	}
	opts := out.Remote.Options

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

	var final build.Output
	if idx := out.Index; idx == nil {
		img, err := annotate(out.Image, nil)
		if err != nil {
			return "", err
		}
		final.Image = img
	} else {
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
		raw, err := idx.RawManifest()
		if err != nil {
			return "", build.RegistryTransient(err)
		}
		if baseName != "" {
			ann[build.AnnotationBaseName] = baseName
		} else if old, err := build.ManifestAnnotations(raw); err == nil && old[build.AnnotationBaseName] != "" {
			ann[build.AnnotationBaseName] = old[build.AnnotationBaseName]
		}
		if baseDigest != "" {
			ann[build.AnnotationBaseDigest] = baseDigest.String()
		}
		mt, err := idx.MediaType()
		if err != nil {
			return "", build.RegistryTransient(err)
		}
		final.Index = mutate.Annotations(mutate.AppendManifests(mutate.IndexMediaType(empty.Index, mt), adds...), ann).(v1.ImageIndex)
	}

	d, err := final.Digest()
	if err != nil {
		return "", err
	}
	for _, t := range job.Rule.Tags {
		ref, err := name.NewTag(job.Registry+"/"+t.String(), name.Insecure)
		if err != nil {
			return "", err
		}
		if err := pushFinal(out.Remote, ref, staging, staged, &final); err != nil {
			return "", build.RegistryTransient(fmt.Errorf("pushing %s: %w", t, err))
		}
		fmt.Fprintf(log, "tagged %s -> %s\n", t, d)
	}
	if staged {
		if err := remote.Delete(staging, opts...); err != nil {
			fmt.Fprintf(log, "warning: deleting the staging tag %s: %v\n", job.Staging, err)
		}
	}
	return d, nil
}

// readStaged reads what a builder outside kiln's process pushed to staging.
func readStaged(ctx context.Context, job *build.Job, staging name.Tag) (*build.Output, error) {
	out := &build.Output{Remote: build.NewRemote(ctx, job, nil, nil)}
	desc, err := remote.Get(staging, out.Remote.Options...)
	if err != nil {
		return nil, build.RegistryTransient(fmt.Errorf("reading the staged image %s: %w", staging, err))
	}
	if desc.MediaType.IsIndex() {
		out.Index, err = desc.ImageIndex()
	} else {
		out.Image, err = desc.Image()
	}
	if err != nil {
		return nil, build.RegistryTransient(err)
	}
	return out, nil
}

// pushFinal pushes final to ref. Read from staging, its layers are the
// registry's, which go-containerregistry mounts where ref lacks them. Made
// in kiln's process, its blobs are in staging's repository (mounted from
// there into any other) and an image goes up in one request.
func pushFinal(r *build.Remote, ref, staging name.Tag, staged bool, final *build.Output) error {
	if from := staging.Context(); !staged && ref.Context() != from {
		if err := r.MountBlobs(ref.Context(), from.RepositoryStr(), final); err != nil {
			return err
		}
	}
	if final.Index != nil {
		return remote.WriteIndex(ref, final.Index, r.Options...)
	}
	if !staged && r.PutManifest(ref, final.Image) == nil {
		return nil
	}
	return remote.Write(ref, final.Image, r.Options...)
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
