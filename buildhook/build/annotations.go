package build

import "encoding/json"

// Annotation keys of the provenance kiln writes on every image it builds:
// the rebase builder and autorebase read the base ones back to know which
// base an image was built on.
const (
	AnnotationBaseName   = "org.opencontainers.image.base.name"
	AnnotationBaseDigest = "org.opencontainers.image.base.digest"
	AnnotationCreated    = "org.opencontainers.image.created"
	// AnnotationBuildInputs is the digest of everything the build read
	// (bases, Dockerfile, context, arguments, builder): builds with the
	// same inputs are the same image. The build's id and trigger are in
	// its record, not the image, so that they are.
	AnnotationBuildInputs = "dev.kiln.build.inputs"
)

// ManifestAnnotations are the annotations of a manifest or index, never
// nil.
func ManifestAnnotations(manifest []byte) (map[string]string, error) {
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, err
	}
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	return m.Annotations, nil
}
