package native

import (
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"kiln/internal/imagetest"
)

// ---- helpers of the native builder's tests (the images, registry and jobs
// they build on are internal/imagetest's) ----

// layerFiles reads a layer's tar by entry name, and checks that its
// entries are sorted.
func layerFiles(t testing.TB, l v1.Layer) map[string]imagetest.Entry {
	t.Helper()
	out := map[string]imagetest.Entry{}
	var names []string
	for _, e := range imagetest.LayerEntries(t, l) {
		out[e.Header.Name] = e
		names = append(names, e.Header.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("layer entries not sorted: %v", names)
	}
	return out
}
