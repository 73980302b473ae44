package registry

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"kiln/distspec"
	"kiln/storage"
)

// accepted returns the media types a request's Accept headers list, or
// nil when any type will do (no header, or a wildcard).
func accepted(r *http.Request) map[string]bool {
	var types map[string]bool
	for _, h := range r.Header.Values("Accept") {
		for _, part := range strings.Split(h, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if mt == "*/*" || mt == "application/*" {
				return nil
			}
			if types == nil {
				types = map[string]bool{}
			}
			types[mt] = true
		}
	}
	return types
}

// negotiate decides what to answer a manifest GET with, as Docker clients
// expect of a registry: the stored manifest when the client accepts its
// type; for a client that takes schema2 manifests but not manifest lists,
// the list's linux/amd64 manifest (what the reference registry does for old
// Docker clients); otherwise MANIFEST_UNKNOWN, as a client that cannot
// read the type cannot use it.
func (a *api) negotiate(r *http.Request, name string, m *storage.Manifest) (*storage.Manifest, error) {
	types := accepted(r)
	if types == nil || types[m.MediaType] {
		return m, nil
	}
	if m.MediaType == storage.MediaTypeDockerManifestList && types[storage.MediaTypeDockerManifest] {
		if d := defaultPlatform(m.Content); d != "" {
			child, err := a.store.GetManifest(r.Context(), name, d)
			if err == nil && types[child.MediaType] {
				return child, nil
			}
		}
	}
	return nil, distspec.ManifestUnknown.WithMessage("the manifest is " + m.MediaType + ", which the request's Accept header does not include")
}

// defaultPlatform returns the linux/amd64 entry of an index, if any.
func defaultPlatform(content []byte) digest.Digest {
	var idx v1.Index
	if json.Unmarshal(content, &idx) != nil {
		return ""
	}
	for _, d := range idx.Manifests {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == "amd64" {
			return d.Digest
		}
	}
	return ""
}
