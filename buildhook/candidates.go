package buildhook

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/storage"
)

// Candidate is an image that could be adopted by autorebase: its layers
// start with every layer of another tag's image (its likely base), but it
// carries no org.opencontainers.image.base.name annotation.
type Candidate struct {
	Image       string        `json:"image"`        // repo:tag
	ImageDigest digest.Digest `json:"image_digest"` // what the tag points to
	// Platform is the platform image compared, for an index (its
	// linux/amd64 image, else its first one).
	Platform     string        `json:"platform,omitempty"`
	Base         string        `json:"base"`        // repo:tag
	BaseDigest   digest.Digest `json:"base_digest"` // what the base tag points to
	SharedLayers int           `json:"shared_layers"`
	Layers       int           `json:"layers"` // the image's
}

// candImage is one image manifest: its platform (for an index's child)
// and layer digests.
type candImage struct {
	platform string
	layers   []string
}

// candTag is what one tag points to.
type candTag struct {
	ref       build.ImageRef
	digest    digest.Digest
	annotated bool        // carries a base name (the index's or the compared image's)
	images    []candImage // one per platform image; the first is the one compared
}

// FindCandidates walks every tag of store and lists the images without a
// base annotation whose layers start with all layers of another tag's
// image (any platform image of an index base). Each image is listed with
// the bases sharing the most layers with it (several when tags of the
// same image tie). Builders' staging tags are skipped. It reads every
// manifest: meant for a development registry.
func FindCandidates(ctx context.Context, store *storage.Store) ([]Candidate, error) {
	repos, err := store.Repositories(ctx)
	if err != nil {
		return nil, err
	}
	type key struct {
		repo string
		d    digest.Digest
	}
	cache := map[key]*candTag{}
	var tags []*candTag
	for _, repo := range repos {
		names, err := store.Tags(ctx, repo)
		if errors.Is(err, storage.ErrNameUnknown) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, tag := range names {
			if strings.HasPrefix(tag, stagingTagPrefix) {
				continue
			}
			d, err := store.ResolveTag(ctx, repo, tag)
			if errors.Is(err, storage.ErrTagUnknown) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, err
			}
			ct, ok := cache[key{repo, d}]
			if !ok {
				if ct, err = readCandTag(ctx, store, repo, d); err != nil {
					return nil, err
				}
				cache[key{repo, d}] = ct
			}
			if ct == nil {
				continue // not an image
			}
			c := *ct
			c.ref = build.ImageRef{Repo: repo, Tag: tag}
			tags = append(tags, &c)
		}
	}

	// Every platform image of every tag, by its layer list.
	type baseImage struct {
		tag *candTag
		n   int
	}
	bases := map[string][]baseImage{}
	for _, t := range tags {
		for _, img := range t.images {
			if len(img.layers) > 0 {
				k := strings.Join(img.layers, ",")
				bases[k] = append(bases[k], baseImage{t, len(img.layers)})
			}
		}
	}

	out := []Candidate{}
	for _, t := range tags {
		if t.annotated {
			continue
		}
		img := t.images[0]
		for n := len(img.layers) - 1; n >= 1; n-- {
			found := false
			seen := map[build.ImageRef]bool{}
			for _, b := range bases[strings.Join(img.layers[:n], ",")] {
				if b.tag.ref == t.ref || seen[b.tag.ref] {
					continue
				}
				seen[b.tag.ref] = true
				found = true
				out = append(out, Candidate{
					Image: t.ref.String(), ImageDigest: t.digest, Platform: img.platform,
					Base: b.tag.ref.String(), BaseDigest: b.tag.digest,
					SharedLayers: n, Layers: len(img.layers),
				})
			}
			if found {
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b Candidate) int {
		if c := strings.Compare(a.Image, b.Image); c != 0 {
			return c
		}
		return strings.Compare(a.Base, b.Base)
	})
	return out, nil
}

type candManifest struct {
	MediaType   string            `json:"mediaType"`
	Annotations map[string]string `json:"annotations"`
	Layers      []v1.Descriptor   `json:"layers"`
	Manifests   []v1.Descriptor   `json:"manifests"`
}

// readCandTag reads manifest d of repo; nil when it is not an image or an
// index of images.
func readCandTag(ctx context.Context, store *storage.Store, repo string, d digest.Digest) (*candTag, error) {
	m, err := store.GetManifest(ctx, repo, d)
	if errors.Is(err, storage.ErrManifestUnknown) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var top candManifest
	if json.Unmarshal(m.Content, &top) != nil {
		return nil, nil
	}
	ct := &candTag{digest: d, annotated: top.Annotations[build.AnnotationBaseName] != ""}
	if !types.MediaType(m.MediaType).IsIndex() {
		if !build.IsImageType(types.MediaType(m.MediaType)) {
			return nil, nil
		}
		ct.images = []candImage{{layers: layerDigests(top.Layers)}}
		return ct, nil
	}
	// The compared image: linux/amd64, else the first image.
	children := slices.DeleteFunc(slices.Clone(top.Manifests), func(c v1.Descriptor) bool {
		return !build.IsImageType(c.MediaType) || c.Platform == nil || c.Platform.OS == "unknown" ||
			c.Annotations[attestationRefType] != ""
	})
	if i := slices.IndexFunc(children, func(c v1.Descriptor) bool {
		return c.Platform.OS == "linux" && c.Platform.Architecture == "amd64"
	}); i > 0 {
		children[0], children[i] = children[i], children[0]
	}
	for _, c := range children {
		cm, err := store.GetManifest(ctx, repo, digest.Digest(c.Digest.String()))
		if errors.Is(err, storage.ErrManifestUnknown) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var child candManifest
		if json.Unmarshal(cm.Content, &child) != nil {
			continue
		}
		if len(ct.images) == 0 && child.Annotations[build.AnnotationBaseName] != "" {
			ct.annotated = true
		}
		ct.images = append(ct.images, candImage{platform: build.PlatformString(*c.Platform), layers: layerDigests(child.Layers)})
	}
	if len(ct.images) == 0 {
		return nil, nil
	}
	return ct, nil
}

func layerDigests(ls []v1.Descriptor) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Digest.String()
	}
	return out
}
