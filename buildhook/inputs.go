package buildhook

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kiln/buildhook/build"
	"kiln/buildhook/dockerfile"
)

// checkInputs refuses a rule whose Dockerfile pulls an image (FROM,
// COPY --from, RUN --mount from) from anywhere but this registry and its
// mirrored upstreams, whatever the builder: a build must not make kiln
// reach other hosts. The native builder checks again as it builds, since
// its bases' ONBUILD triggers can name images too.
func (s *Service) checkInputs(r *build.Rule) error {
	content, err := os.ReadFile(filepath.Join(r.Context, r.Dockerfile))
	if err != nil {
		return err
	}
	info, err := dockerfile.Parse(content, r.Args)
	if err != nil {
		return err
	}
	hosts := append([]string{s.opts.Registry}, s.opts.Hosts...)
	return checkImageInputs(info, hosts, s.opts.Upstreams)
}

func checkImageInputs(info *dockerfile.Info, hosts, upstreams []string) error {
	allowed := func(ref string) bool {
		if strings.EqualFold(ref, "scratch") {
			return true
		}
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			return false
		}
		domain := reference.Domain(named)
		same := func(h string) bool { return strings.EqualFold(h, domain) }
		return slices.ContainsFunc(hosts, same) || slices.ContainsFunc(upstreams, same)
	}
	for _, st := range info.Stages {
		if !st.FromStage && !allowed(st.BaseName) {
			return fmt.Errorf("Dockerfile line %d: image %q: builds only pull images of this registry or its mirrored upstreams", st.Line, st.BaseName)
		}
	}
	for _, img := range info.CopyFromImages {
		if !allowed(img) {
			return fmt.Errorf("image %q (COPY --from or RUN --mount): builds only pull images of this registry or its mirrored upstreams", img)
		}
	}
	return nil
}

// checkOnBuild refuses, for a builder that runs its bases' ONBUILD
// triggers itself (docker, buildah), a base that has any when the rule
// does not set onbuild: they are whoever pushed the base, acting on this
// rule's context. The native builder ignores them instead.
func (s *Service) checkOnBuild(ctx context.Context, job *build.Job) error {
	r := job.Rule
	if r.OnBuild {
		return nil
	}
	content, err := os.ReadFile(filepath.Join(r.Context, r.Dockerfile))
	if err != nil {
		return err
	}
	info, err := dockerfile.Parse(content, r.Args)
	if err != nil {
		return err
	}
	opts := build.RemoteOptions(ctx, job, nil, nil)
	for _, st := range info.Stages {
		if st.FromStage || strings.EqualFold(st.BaseName, "scratch") {
			continue
		}
		ref, err := s.throughKiln(job, st.BaseName)
		if err != nil {
			return err
		}
		imgs, err := baseImages(ref, opts)
		if err != nil {
			return build.RegistryTransient(fmt.Errorf("reading base %s: %w", st.BaseName, err))
		}
		for _, img := range imgs {
			if err := build.CheckConfigSize(st.BaseName, img); err != nil {
				return err
			}
			cf, err := img.ConfigFile()
			if err != nil {
				return build.RegistryTransient(fmt.Errorf("reading base %s: %w", st.BaseName, err))
			}
			if t := cf.Config.OnBuild; len(t) > 0 {
				return fmt.Errorf("Dockerfile line %d: base %s has ONBUILD triggers %q, which this builder would run against the rule's context; "+
					"set onbuild: true on rule %s to allow them, or use builder native, which ignores them", st.Line, st.BaseName, t, r.Name)
			}
		}
	}
	return nil
}

// throughKiln is where a builder gets the image s names: this registry,
// under the cache's name for a mirrored upstream's (see checkImageInputs).
func (s *Service) throughKiln(job *build.Job, ref string) (name.Reference, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	repo := reference.Path(named)
	domain := reference.Domain(named)
	same := func(h string) bool { return strings.EqualFold(h, domain) }
	if !strings.EqualFold(domain, s.opts.Registry) && !slices.ContainsFunc(s.opts.Hosts, same) {
		i := slices.IndexFunc(s.opts.Upstreams, same)
		if i < 0 {
			return nil, fmt.Errorf("image %q: builds only pull images of this registry or its mirrored upstreams", ref)
		}
		repo = s.opts.Upstreams[i] + "/" + repo
	}
	id := ":latest"
	if d, ok := named.(reference.Digested); ok {
		id = "@" + d.Digest().String()
	} else if t, ok := named.(reference.Tagged); ok {
		id = ":" + t.Tag()
	}
	return name.ParseReference(job.Registry+"/"+repo+id, name.Insecure)
}

// baseImages are the images ref names: itself, or every image of an index.
func baseImages(ref name.Reference, opts []remote.Option) ([]v1.Image, error) {
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, err
	}
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return nil, err
		}
		return []v1.Image{img}, nil
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var imgs []v1.Image
	for _, m := range im.Manifests {
		if !build.IsImageType(m.MediaType) {
			continue
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}
