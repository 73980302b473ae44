package ui

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/distspec"
	"kiln/storage"
)

// image is what the repository page shows of one tag.
type image struct {
	Tag       string
	Digest    digest.Digest
	Index     bool
	Size      int64 // config and layers, as stored (compressed); an index: its images'
	Platforms []string
	Created   time.Time
	Base      base
	Err       string // why the rest is missing
}

// base is the image an image says it was built from (the
// org.opencontainers.image.base annotations).
type base struct {
	Name   string        // as annotated: host/repo:tag
	Digest digest.Digest // the base's digest when the image was built
	Link   string        // its repository page here, "" when not in this registry
	Now    digest.Digest // what the base tag names now, "" when not here
}

// Moved reports whether the base tag names another image than the one
// this was built on: the image has not been rebuilt on its new base.
func (b base) Moved() bool { return b.Digest != "" && b.Now != "" && b.Now != b.Digest }

// maxConfigSize bounds the image config read for platform and creation
// time; configs are a few KiB.
const maxConfigSize = 1 << 20

// maxIndexImages bounds the images of an index read for sizes.
const maxIndexImages = 16

// describe reads the tag's manifest (and an image's config) in repo.
func describe(ctx context.Context, c Catalog, repo, tag string) image {
	img := image{Tag: tag}
	d, err := c.ResolveTag(ctx, repo, tag)
	if err != nil {
		img.Err = "tag unreadable"
		return img
	}
	img.Digest = d
	_, p, err := manifest(ctx, c, repo, d)
	if err != nil {
		img.Err = "manifest unreadable"
		return img
	}
	img.Base = baseOf(ctx, c, p.Annotations)
	if t, err := time.Parse(time.RFC3339, p.Annotations[build.AnnotationCreated]); err == nil {
		img.Created = t
	}
	if storage.IsIndex(p.MediaType) {
		img.Index = true
		for i, child := range p.Manifests {
			if pl := child.Platform; pl != nil && pl.OS != "unknown" {
				img.Platforms = append(img.Platforms, platform(pl.OS, pl.Architecture, pl.Variant))
			}
			if i < maxIndexImages {
				if _, cp, err := manifest(ctx, c, repo, child.Digest); err == nil {
					img.Size += blobsSize(cp)
				}
			}
		}
		return img
	}
	img.Size = blobsSize(p)
	if len(p.Blobs) > 0 {
		if cfg, err := readConfig(ctx, c, p.Blobs[0].Digest); err == nil {
			if cfg.OS != "" {
				img.Platforms = []string{platform(cfg.OS, cfg.Architecture, cfg.Variant)}
			}
			if img.Created.IsZero() && cfg.Created != nil {
				img.Created = *cfg.Created
			}
		}
	}
	return img
}

func manifest(ctx context.Context, c Catalog, repo string, d digest.Digest) (*storage.Manifest, *storage.ParsedManifest, error) {
	m, err := c.GetManifest(ctx, repo, d)
	if err != nil {
		return nil, nil, err
	}
	p, err := storage.ParseManifest(m.MediaType, m.Content)
	if err != nil {
		return nil, nil, err
	}
	return m, p, nil
}

func blobsSize(p *storage.ParsedManifest) int64 {
	var n int64
	for _, b := range p.Blobs {
		n += b.Size
	}
	return n
}

type imageConfig struct {
	OS           string     `json:"os"`
	Architecture string     `json:"architecture"`
	Variant      string     `json:"variant"`
	Created      *time.Time `json:"created"`
}

func readConfig(ctx context.Context, c Catalog, d digest.Digest) (*imageConfig, error) {
	rc, err := c.OpenBlob(ctx, d, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var cfg imageConfig
	if err := json.NewDecoder(io.LimitReader(rc, maxConfigSize)).Decode(&cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func platform(os, arch, variant string) string {
	s := os + "/" + arch
	if variant != "" {
		s += "/" + variant
	}
	return s
}

// baseOf reads the base annotations and, when the base is a tag of this
// registry, where that tag points now.
func baseOf(ctx context.Context, c Catalog, ann map[string]string) base {
	b := base{Name: ann[build.AnnotationBaseName]}
	if d, err := digest.Parse(ann[build.AnnotationBaseDigest]); err == nil {
		b.Digest = d
	}
	repo, tag, ok := localRef(b.Name)
	if !ok || !distspec.ValidName(repo) || !distspec.ValidTag(tag) {
		return b
	}
	if now, err := c.ResolveTag(ctx, repo, tag); err == nil {
		b.Now = now
		b.Link = repoLink(repo) + "#tag-" + tag
	}
	return b
}

// localRef splits host/repo:tag into repo and tag, dropping the host
// (kiln names its own bases with the address builders reach it by). The
// caller checks the tag exists here: an image of another registry whose
// name this store also holds shows as local, which for a mirror it is.
func localRef(name string) (repo, tag string, ok bool) {
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	slash := strings.LastIndexByte(name, '/')
	colon := strings.LastIndexByte(name, ':')
	if colon <= slash {
		return "", "", false
	}
	repo, tag = name[:colon], name[colon+1:]
	if first, rest, found := strings.Cut(repo, "/"); found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		repo = rest
	}
	return repo, tag, repo != "" && tag != ""
}
