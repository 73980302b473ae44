package buildhook

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/distribution/reference"
)

// checkInputs refuses a rule whose Dockerfile pulls an image (FROM,
// COPY --from, RUN --mount from) from anywhere but this registry and its
// mirrored upstreams, whatever the builder: a build must not make kiln
// reach other hosts. The native builder checks again as it builds, since
// its bases' ONBUILD triggers can name images too.
func (s *Service) checkInputs(r *Rule) error {
	content, err := os.ReadFile(filepath.Join(r.Context, r.Dockerfile))
	if err != nil {
		return err
	}
	info, err := ParseDockerfile(content, r.Args)
	if err != nil {
		return err
	}
	hosts := append([]string{s.opts.Registry}, s.opts.Hosts...)
	return checkImageInputs(info, hosts, s.opts.Upstreams)
}

func checkImageInputs(info *DockerfileInfo, hosts, upstreams []string) error {
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
