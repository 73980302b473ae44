package imagetest

import "testing"

// The same files make the same layer, whatever the map's order: tests
// compare layer digests.
func TestLayerIsReproducible(t *testing.T) {
	t.Parallel()
	files := map[string]File{"b": {Content: "b"}, "a": {Dir: true}, "a/l": {Link: "../b"}, "x": {Content: "x", Mode: 0o755}}
	d1, err := Layer(t, files).Digest()
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := Layer(t, files).Digest()
	if d1 != d2 {
		t.Fatalf("digests %s and %s", d1, d2)
	}
	var got []string
	for _, e := range LayerEntries(t, Layer(t, files)) {
		got = append(got, e.Header.Name+" "+e.Header.FileInfo().Mode().String())
	}
	want := []string{"a/ drwxr-xr-x", "a/l Lrwxrwxrwx", "b -rw-r--r--", "x -rwxr-xr-x"}
	if len(got) != len(want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// What Push writes, Get and Pull read back under the same digest.
func TestPushPull(t *testing.T) {
	t.Parallel()
	host := Registry(t)
	amd, arm := Base(t, BaseOptions{Version: "3.8.1"}), Base(t, BaseOptions{Arch: "arm64", Version: "3.8.1"})
	d := Push(t, host, "python:3.8-amd64", amd)
	if got, _ := Pull(t, host, "python@"+d.String()).Digest(); got.String() != d.String() {
		t.Errorf("pulled %s, pushed %s", got, d)
	}
	id := Push(t, host, "python:3.8", Index(t, amd, arm))
	idx, err := Get(t, host, "python:3.8").ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := idx.Digest(); got.String() != id.String() || len(im.Manifests) != 3 {
		t.Errorf("index %s with %d manifests, want %s with 3 (amd64, arm64, attestation)", got, len(im.Manifests), id)
	}
	if p := im.Manifests[1].Platform; p == nil || p.Architecture != "arm64" || p.Variant != "v8" {
		t.Errorf("second manifest's platform %+v, want linux/arm64/v8", p)
	}
}
