package storage

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types kiln stores.
const (
	MediaTypeOCIManifest        = v1.MediaTypeImageManifest
	MediaTypeOCIIndex           = v1.MediaTypeImageIndex
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// ManifestMediaTypes lists the media types PUT accepts, indexes first.
var ManifestMediaTypes = []string{MediaTypeOCIIndex, MediaTypeDockerManifestList, MediaTypeOCIManifest, MediaTypeDockerManifest}

// ErrManifestInvalid wraps every reason a manifest is refused.
var ErrManifestInvalid = errors.New("manifest invalid")

// ParsedManifest is what kiln needs to know of a manifest: what it points to.
type ParsedManifest struct {
	MediaType    string
	Blobs        []v1.Descriptor // config and layers: must be blobs of the repository
	Manifests    []v1.Descriptor // index children: must be manifests of the repository
	Subject      *v1.Descriptor
	ArtifactType string // for the referrers API
	Annotations  map[string]string
}

// IsIndex reports whether mediaType is an index or manifest list.
func IsIndex(mediaType string) bool {
	return mediaType == MediaTypeOCIIndex || mediaType == MediaTypeDockerManifestList
}

// rawManifest covers the fields of every supported manifest kind.
type rawManifest struct {
	specs.Versioned
	MediaType    string            `json:"mediaType,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Config       *v1.Descriptor    `json:"config,omitempty"`
	Layers       []v1.Descriptor   `json:"layers,omitempty"`
	Manifests    []v1.Descriptor   `json:"manifests,omitempty"`
	Subject      *v1.Descriptor    `json:"subject,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrManifestInvalid, fmt.Sprintf(format, args...))
}

// ParseManifest checks body as a manifest of contentType (the request's
// Content-Type; may be empty when the body names its media type).
func ParseManifest(contentType string, body []byte) (*ParsedManifest, error) {
	var raw rawManifest
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, invalid("not valid JSON: %v", err)
	}
	if raw.SchemaVersion != 2 {
		return nil, invalid("schemaVersion must be 2, got %d", raw.SchemaVersion)
	}
	mediaType := contentType
	switch {
	case mediaType == "":
		mediaType = raw.MediaType
	case raw.MediaType != "" && raw.MediaType != mediaType:
		return nil, invalid("Content-Type %q does not match the manifest's mediaType %q", contentType, raw.MediaType)
	}
	if mediaType == "" {
		if raw.Manifests != nil {
			mediaType = MediaTypeOCIIndex
		} else {
			mediaType = MediaTypeOCIManifest
		}
	}
	p := &ParsedManifest{MediaType: mediaType, Subject: raw.Subject, Annotations: raw.Annotations, ArtifactType: raw.ArtifactType}
	switch mediaType {
	case MediaTypeOCIManifest, MediaTypeDockerManifest:
		if raw.Config == nil {
			return nil, invalid("image manifest has no config")
		}
		if raw.Manifests != nil {
			return nil, invalid("image manifest must not have manifests")
		}
		p.Blobs = append(p.Blobs, *raw.Config)
		for _, l := range raw.Layers {
			if isForeign(l) {
				continue // non-distributable layers live elsewhere
			}
			p.Blobs = append(p.Blobs, l)
		}
		if p.ArtifactType == "" {
			p.ArtifactType = raw.Config.MediaType
		}
	case MediaTypeOCIIndex, MediaTypeDockerManifestList:
		if raw.Config != nil || raw.Layers != nil {
			return nil, invalid("index must not have config or layers")
		}
		p.Manifests = raw.Manifests
	default:
		return nil, invalid("unsupported manifest media type %q", mediaType)
	}
	for _, d := range append(append([]v1.Descriptor{}, p.Blobs...), p.Manifests...) {
		if err := checkDescriptor(d); err != nil {
			return nil, err
		}
	}
	if p.Subject != nil {
		if err := checkDescriptor(*p.Subject); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func checkDescriptor(d v1.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return invalid("descriptor digest %q: %v", d.Digest, err)
	}
	if d.Size < 0 {
		return invalid("descriptor %s has negative size", d.Digest)
	}
	if d.MediaType == "" {
		return invalid("descriptor %s has no mediaType", d.Digest)
	}
	return nil
}

func isForeign(d v1.Descriptor) bool {
	switch d.MediaType {
	case "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
		v1.MediaTypeImageLayerNonDistributable,     //nolint:staticcheck // still found in the wild
		v1.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck
		v1.MediaTypeImageLayerNonDistributableZstd: //nolint:staticcheck
		return true
	}
	return false
}

// Descriptor returns the descriptor a referrers index lists for the
// manifest with this content.
func (p *ParsedManifest) Descriptor(d digest.Digest, size int64) v1.Descriptor {
	return v1.Descriptor{MediaType: p.MediaType, Digest: d, Size: size, ArtifactType: p.ArtifactType, Annotations: p.Annotations}
}
