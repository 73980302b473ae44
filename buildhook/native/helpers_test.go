package native

import (
	"archive/tar"
	"errors"
	"io"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ---- helpers of the native builder's tests (the images, registry and jobs
// they build on are internal/imagetest's) ----

type tarEntry struct {
	hdr     *tar.Header
	content string
}

// layerFiles reads a layer's tar, and checks that its entries are sorted.
func layerFiles(t testing.TB, l v1.Layer) map[string]tarEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]tarEntry{}
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = tarEntry{hdr: h, content: string(b)}
		names = append(names, h.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("layer entries not sorted: %v", names)
	}
	return out
}
