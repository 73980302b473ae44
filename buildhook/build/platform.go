package build

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// IsImageType reports whether an index entry of type mt is an image (not
// an index, not an attestation's other types).
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
