package native

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kiln/buildhook/build"
)

// imageRef turns a FROM or COPY --from reference into where to pull it:
// this registry over plain HTTP for its own names (a mirrored upstream's
// through kiln's cache), pinned to the trigger's digest when it is the tag
// that moved. Other registries are refused.
func (br *buildRun) imageRef(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", s, err)
	}
	job := br.job
	repo := ref.Context().RepositoryStr()
	host := ref.Context().RegistryStr()
	local := strings.EqualFold(host, job.Registry)
	if !local {
		for _, h := range br.b.Hosts {
			if strings.EqualFold(h, host) {
				local = true
				break
			}
		}
	}
	hostname := host
	if i := strings.LastIndex(host, ":"); i >= 0 && !strings.HasSuffix(host, "]") {
		hostname = host[:i]
	}
	loopback := hostname == "localhost" || hostname == "127.0.0.1" || hostname == "[::1]"
	if i := strings.LastIndex(job.Registry, ":"); !local && loopback && i >= 0 {
		local = strings.EqualFold(host, hostname+job.Registry[i:])
	}
	tag, isTag := ref.(name.Tag)
	if !local && !loopback && len(br.b.Hosts) == 0 && isTag && host != name.DefaultRegistry {
		for _, b := range job.Rule.Bases {
			if b.Repo == repo && b.Tag == tag.TagStr() {
				local = true
			}
		}
	}
	if !local {
		if cached, ok := br.throughCache(host, repo); ok {
			repo, local = cached, true
		}
	}
	if !local {
		// Anything else is refused before any connection: a FROM or
		// COPY --from (an ONBUILD trigger's too) must not make kiln probe
		// other hosts and report what answered.
		return nil, fmt.Errorf("image %q: the native builder only pulls images of this registry or its mirrored upstreams", s)
	}
	if isTag {
		if tr := job.Trigger; tr.Digest != "" && tr.Ref.Repo == repo && tr.Ref.Tag == tag.TagStr() {
			return name.NewDigest(job.Registry+"/"+repo+"@"+tr.Digest.String(), name.Insecure)
		}
		return name.NewTag(job.Registry+"/"+repo+":"+tag.TagStr(), name.Insecure)
	}
	return name.NewDigest(job.Registry+"/"+repo+"@"+ref.Identifier(), name.Insecure)
}

// throughCache maps an image of a mirrored registry to the repository kiln
// caches it under.
func (br *buildRun) throughCache(host, repo string) (string, bool) {
	if host == name.DefaultRegistry {
		host = "docker.io"
	}
	for _, u := range br.b.Upstreams {
		if strings.EqualFold(u, host) {
			return u + "/" + repo, true
		}
	}
	return "", false
}

func (br *buildRun) descriptor(s string) (*remote.Descriptor, error) {
	ref, err := br.imageRef(s)
	if err != nil {
		return nil, err
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	if d, ok := br.descs[ref.String()]; ok {
		return d, nil
	}
	d, err := remote.Get(ref, br.remoteOpts...)
	if err != nil {
		return nil, build.RegistryTransient(fmt.Errorf("pulling %s: %w", s, err))
	}
	br.descs[ref.String()] = d
	return d, nil
}

// image pulls the image s names for platform: the matching child of an
// index, or the image itself.
func (br *buildRun) image(s string, platform v1.Platform) (v1.Image, error) {
	desc, err := br.descriptor(s)
	if err != nil {
		return nil, err
	}
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return nil, build.RegistryTransient(fmt.Errorf("pulling %s: %w", s, err))
		}
		return img, build.CheckConfigSize(s, img)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, build.RegistryTransient(fmt.Errorf("pulling %s: %w", s, err))
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, build.RegistryTransient(fmt.Errorf("pulling %s: %w", s, err))
	}
	best, bestScore := -1, 0
	for i, m := range im.Manifests {
		if !build.IsImageType(m.MediaType) {
			continue
		}
		if sc := build.PlatformMatch(platform, m.Platform); sc > bestScore {
			best, bestScore = i, sc
		}
	}
	if best < 0 {
		return nil, fmt.Errorf("%s has no image for platform %s", s, build.PlatformString(platform))
	}
	img, err := idx.Image(im.Manifests[best].Digest)
	if err != nil {
		return nil, build.RegistryTransient(fmt.Errorf("pulling %s: %w", s, err))
	}
	return img, build.CheckConfigSize(s, img)
}

// base returns the scanned filesystem of img, once per build.
func (br *buildRun) base(img v1.Image) (*fsBase, error) {
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	br.mu.Lock()
	b, ok := br.bases[d]
	br.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err = newFSBase(br.ctx, &br.b.layers, img)
	if err != nil {
		return nil, err
	}
	br.mu.Lock()
	br.bases[d] = b
	br.mu.Unlock()
	return b, nil
}
