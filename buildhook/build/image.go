package build

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image helpers shared by the builders that read images themselves
// (native, rebase) and by the orchestration's provenance and inputs.

// IsImageType reports whether mt is an image manifest (OCI or Docker), not
// an index or an artifact.
func IsImageType(mt types.MediaType) bool {
	return mt == types.OCIManifestSchema1 || mt == types.DockerManifestSchema2
}

// PlatformMatch says how well have fits want: 2 exactly, 1 with a
// variant that only one side names, 0 not.
func PlatformMatch(want v1.Platform, have *v1.Platform) int {
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

// PlatformString is p as os/arch[/variant].
func PlatformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// MaxConfigSize bounds the image config a builder reads (whole,
// into memory) of a base: real ones are kilobytes.
const MaxConfigSize = 8 << 20

// CheckConfigSize refuses an image whose manifest announces a config
// larger than MaxConfigSize; go-containerregistry reads no more of a
// blob than its descriptor says.
func CheckConfigSize(s string, img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return RegistryTransient(fmt.Errorf("pulling %s: %w", s, err))
	}
	if m.Config.Size > MaxConfigSize {
		return fmt.Errorf("%s: its config is %d bytes, more than the %d the native builder reads", s, m.Config.Size, MaxConfigSize)
	}
	return nil
}
