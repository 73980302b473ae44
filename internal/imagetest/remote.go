package imagetest

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"
)

// Push writes x, a v1.Image or a v1.ImageIndex, to ref (repo:tag) at
// host over plain HTTP and returns its digest.
func Push(t testing.TB, host, ref string, x any) digest.Digest {
	t.Helper()
	tag, err := name.NewTag(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var h v1.Hash
	switch x := x.(type) {
	case v1.Image:
		if err = remote.Write(tag, x); err == nil {
			h, err = x.Digest()
		}
	case v1.ImageIndex:
		if err = remote.WriteIndex(tag, x); err == nil {
			h, err = x.Digest()
		}
	default:
		t.Fatalf("push %T: not an image or an index", x)
	}
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(h.String())
}

// Get reads the descriptor of ref (repo:tag or repo@digest) at host.
func Get(t testing.TB, host, ref string) *remote.Descriptor {
	t.Helper()
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(r)
	if err != nil {
		t.Fatalf("get %s: %v", ref, err)
	}
	return d
}

// Pull reads the image at ref at host and checks that it is valid.
func Pull(t testing.TB, host, ref string) v1.Image {
	t.Helper()
	img, err := Get(t, host, ref).Image()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("%s is not a valid image: %v", ref, err)
	}
	return img
}
