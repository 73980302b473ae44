package registry

import (
	"net/http"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"kiln/blobs"
)

// referrers lists the manifests whose subject is the digest, as an OCI
// index, optionally filtered by artifactType.
func (a *api) referrers(w http.ResponseWriter, r *http.Request, name, dg string) error {
	d, err := blobs.ParseDigest(dg)
	if err != nil {
		return err
	}
	descs, err := a.store.Referrers(r.Context(), name, d)
	if err != nil {
		return a.internal(r, err)
	}
	if at := r.URL.Query().Get("artifactType"); at != "" {
		kept := descs[:0]
		for _, desc := range descs {
			if desc.ArtifactType == at {
				kept = append(kept, desc)
			}
		}
		descs = kept
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	index := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: descs}
	index.SchemaVersion = 2
	writeJSON(w, v1.MediaTypeImageIndex, index)
	return nil
}
