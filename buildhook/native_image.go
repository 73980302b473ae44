package buildhook

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"kiln/buildhook/build"
)

// imageRef turns a FROM or COPY --from reference into where to pull it:
// this registry over plain HTTP for its own names (a mirrored upstream's
// through kiln's cache), pinned to the trigger's digest when it is the tag
// that moved. Other registries are refused.
func (nb *nativeBuild) imageRef(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", s, err)
	}
	job := nb.job
	repo := ref.Context().RepositoryStr()
	host := ref.Context().RegistryStr()
	local := strings.EqualFold(host, job.Registry)
	if !local {
		for _, h := range nb.b.Hosts {
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
	if !local && !loopback && len(nb.b.Hosts) == 0 && isTag && host != name.DefaultRegistry {
		for _, b := range job.Rule.Bases {
			if b.Repo == repo && b.Tag == tag.TagStr() {
				local = true
			}
		}
	}
	if !local {
		if cached, ok := nb.throughCache(host, repo); ok {
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
func (nb *nativeBuild) throughCache(host, repo string) (string, bool) {
	if host == name.DefaultRegistry {
		host = "docker.io"
	}
	for _, u := range nb.b.Upstreams {
		if strings.EqualFold(u, host) {
			return u + "/" + repo, true
		}
	}
	return "", false
}

func (nb *nativeBuild) descriptor(s string) (*remote.Descriptor, error) {
	ref, err := nb.imageRef(s)
	if err != nil {
		return nil, err
	}
	nb.mu.Lock()
	defer nb.mu.Unlock()
	if d, ok := nb.descs[ref.String()]; ok {
		return d, nil
	}
	d, err := remote.Get(ref, nb.remoteOpts...)
	if err != nil {
		return nil, build.RegistryTransient(fmt.Errorf("pulling %s: %w", s, err))
	}
	nb.descs[ref.String()] = d
	return d, nil
}

func ncIsImageType(mt types.MediaType) bool {
	return mt == types.OCIManifestSchema1 || mt == types.DockerManifestSchema2
}

// ncPlatformMatch says how well have fits want: 2 exactly, 1 with a
// variant that only one side names, 0 not.
func ncPlatformMatch(want v1.Platform, have *v1.Platform) int {
	if have == nil || have.OS != want.OS || have.Architecture != want.Architecture {
		return 0
	}
	norm := func(p v1.Platform) string {
		if p.Architecture == "arm64" && p.Variant == "v8" {
			return ""
		}
		return p.Variant
	}
	if norm(*have) == norm(want) {
		return 2
	}
	if want.Variant == "" || have.Variant == "" {
		return 1
	}
	return 0
}

// image pulls the image s names for platform: the matching child of an
// index, or the image itself.
func (nb *nativeBuild) image(s string, platform v1.Platform) (v1.Image, error) {
	desc, err := nb.descriptor(s)
	if err != nil {
		return nil, err
	}
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return nil, build.RegistryTransient(fmt.Errorf("pulling %s: %w", s, err))
		}
		return img, ncCheckConfigSize(s, img)
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
		if !ncIsImageType(m.MediaType) {
			continue
		}
		if sc := ncPlatformMatch(platform, m.Platform); sc > bestScore {
			best, bestScore = i, sc
		}
	}
	if best < 0 {
		return nil, fmt.Errorf("%s has no image for platform %s", s, ncPlatformString(platform))
	}
	img, err := idx.Image(im.Manifests[best].Digest)
	if err != nil {
		return nil, build.RegistryTransient(fmt.Errorf("pulling %s: %w", s, err))
	}
	return img, ncCheckConfigSize(s, img)
}

// ncMaxConfigSize bounds the image config the native builder reads (whole,
// into memory) of a base: real ones are kilobytes.
const ncMaxConfigSize = 8 << 20

// ncCheckConfigSize refuses an image whose manifest announces a config
// larger than ncMaxConfigSize; go-containerregistry reads no more of a
// blob than its descriptor says.
func ncCheckConfigSize(s string, img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return build.RegistryTransient(fmt.Errorf("pulling %s: %w", s, err))
	}
	if m.Config.Size > ncMaxConfigSize {
		return fmt.Errorf("%s: its config is %d bytes, more than the %d the native builder reads", s, m.Config.Size, ncMaxConfigSize)
	}
	return nil
}

// base returns the scanned filesystem of img, once per build.
func (nb *nativeBuild) base(img v1.Image) (*nfsBase, error) {
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	nb.mu.Lock()
	b, ok := nb.bases[d]
	nb.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err = newNFSBase(nb.ctx, &nb.b.layers, img)
	if err != nil {
		return nil, err
	}
	nb.mu.Lock()
	nb.bases[d] = b
	nb.mu.Unlock()
	return b, nil
}
