package build

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/opencontainers/go-digest"
)

// Output is what a builder in kiln's process made: an image or an index
// whose blobs are all in job.Staging's repository and whose manifests are
// pushed nowhere yet. Finalize puts its annotated manifests straight to
// the rule's tags: pushing it to the staging tag first, only to read it
// back and delete the tag, would cost three manifest requests (and their
// disk syncs) on every build.
type Output struct {
	Image v1.Image      // set for an image,
	Index v1.ImageIndex // or for an index
	// Remote is how the builder reached kiln: Finalize reuses its
	// connections and its ping.
	Remote *Remote
}

// Digest is the digest of the output's manifest.
func (o *Output) Digest() (digest.Digest, error) {
	var h v1.Hash
	var err error
	if o.Index != nil {
		h, err = o.Index.Digest()
	} else {
		h, err = o.Image.Digest()
	}
	if err != nil {
		return "", err
	}
	return digest.Digest(h.String()), nil
}

// InProcess is a Builder that runs in kiln's process and can hand its
// result over unpushed. Build stays: it pushes the Output to job.Staging.
type InProcess interface {
	Builder
	// BuildOutput builds job.Rule, pushes the blobs of the result to
	// job.Staging's repository and returns the result.
	BuildOutput(ctx context.Context, job *Job, log io.Writer) (*Output, error)
}

// PushBlobs puts every blob of out that repo lacks into it: the
// manifests can go right after. Large new blobs, which preloading leaves
// out, go up through go-containerregistry (a chunked upload, or a mount).
func (r *Remote) PushBlobs(repo name.Repository, out *Output) error {
	imgs, err := out.images()
	if err != nil {
		return err
	}
	if r.preloadBlobs(repo, imgs) {
		return nil
	}
	for _, img := range imgs {
		blobs, err := imageBlobs(img)
		if err != nil {
			return err
		}
		for _, l := range blobs {
			if err := remote.WriteLayer(repo, l, r.Options...); err != nil {
				return RegistryTransient(fmt.Errorf("pushing a blob to %s: %w", repo, err))
			}
		}
	}
	return nil
}

// MountBlobs mounts every blob of out that repo lacks from repository
// from of the same registry, where PushBlobs put them.
func (r *Remote) MountBlobs(repo name.Repository, from string, out *Output) error {
	imgs, err := out.images()
	if err != nil {
		return err
	}
	blobs, err := listBlobs(imgs, func(_ v1.Layer, d v1.Hash) (blob, error) { return blob{digest: d, from: from}, nil })
	if err != nil {
		return err
	}
	if !r.preloadAll(repo, blobs) {
		return RegistryTransient(fmt.Errorf("mounting the blobs of the build from %s into %s failed", from, repo))
	}
	return nil
}

// imageBlobs are img's layers and its config, as a layer.
func imageBlobs(img v1.Image) ([]v1.Layer, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	return append(layers, static.NewLayer(cfg, m.Config.MediaType)), nil
}

// images are the output's image, or the images of its index.
func (o *Output) images() ([]v1.Image, error) {
	if o.Index == nil {
		return []v1.Image{o.Image}, nil
	}
	return imagesOf(o.Index)
}

// PushOutput pushes out, whose blobs are there, to job.Staging and
// returns its digest: Build of an InProcess builder.
func (r *Remote) PushOutput(log io.Writer, job *Job, out *Output) (digest.Digest, error) {
	staging, err := StagingTag(job)
	if err != nil {
		return "", fmt.Errorf("staging tag: %w", err)
	}
	if out.Index == nil {
		return r.PushImage(log, staging, out.Image)
	}
	im, err := out.Index.IndexManifest()
	if err != nil {
		return "", err
	}
	return r.PushIndex(log, staging, out.Index, len(im.Manifests))
}
