package imagetest

import (
	"archive/tar"
	"bytes"
	"io"
	"maps"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is a layer entry: a regular file (Content), a directory (Dir) or a
// symlink (Link). A zero Mode is 0o644 for a file and 0o755 for a
// directory; a symlink's is always 0o777.
type File struct {
	Content string
	Mode    int64
	Dir     bool
	Link    string
}

// Layer makes an OCI layer of files, keyed by path, in sorted order and
// with a fixed time, so that the same files give the same digest.
func Layer(t testing.TB, files map[string]File) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range slices.Sorted(maps.Keys(files)) {
		f := files[n]
		h := &tar.Header{Name: n, Mode: f.Mode, ModTime: time.Unix(1, 0)}
		switch {
		case f.Dir:
			h.Typeflag, h.Name = tar.TypeDir, n+"/"
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Content))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.Content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return RawLayer(t, buf.Bytes())
}

// RawLayer is an OCI layer of b, a tar or a gzipped tar, taken as it is:
// for layers that Layer cannot write.
func RawLayer(t testing.TB, b []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}
