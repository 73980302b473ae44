package e2e

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// gatedUpstream is a registry serving team/base:1, just enough for
// kiln's proxy. Its tag names image 1, then the image move names; each
// image's config is answered only once the test opens that image's gate,
// so a build on it stays running as long as the test needs.
type gatedUpstream struct {
	*httptest.Server
	mu      sync.Mutex
	images  map[int]v1.Image
	current int
	blobs   map[string][]byte
	gateOf  map[string]int // config digest -> image
	gates   map[int]chan struct{}
}

func startGatedUpstream(t *testing.T) *gatedUpstream {
	t.Helper()
	u := &gatedUpstream{images: map[int]v1.Image{}, blobs: map[string][]byte{}, gateOf: map[string]int{}, gates: map[int]chan struct{}{}}
	for n := 1; n <= 2; n++ {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		u.images[n] = img
		u.gates[n] = make(chan struct{})
		cfg, _ := img.ConfigName()
		u.gateOf[cfg.String()] = n
		maps.Copy(u.blobs, imageBlobs(t, img))
	}
	u.current = 1
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(func() {
		for n := range u.gates {
			u.open(n) // no handler may hold Close up
		}
		u.Close()
	})
	return u
}

func (u *gatedUpstream) serve(w http.ResponseWriter, r *http.Request) {
	const repo = "/v2/team/base/"
	p := r.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		w.WriteHeader(http.StatusOK)
	case strings.HasPrefix(p, repo+"manifests/"):
		ref := strings.TrimPrefix(p, repo+"manifests/")
		u.mu.Lock()
		img := u.images[u.current]
		if ref != "1" {
			img = nil
			for _, i := range u.images {
				if d, _ := i.Digest(); d.String() == ref {
					img = i
				}
			}
		}
		u.mu.Unlock()
		if img == nil {
			http.NotFound(w, r)
			return
		}
		raw, _ := img.RawManifest()
		mt, _ := img.MediaType()
		d, _ := img.Digest()
		w.Header().Set("Content-Type", string(mt))
		w.Header().Set("Docker-Content-Digest", d.String())
		w.Header().Set("Content-Length", fmt.Sprint(len(raw)))
		if r.Method == http.MethodGet {
			w.Write(raw)
		}
	case strings.HasPrefix(p, repo+"blobs/"):
		d := strings.TrimPrefix(p, repo+"blobs/")
		u.mu.Lock()
		b, ok := u.blobs[d]
		gate, gated := u.gates[u.gateOf[d]]
		u.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		if gated && r.Method == http.MethodGet {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Header().Set("Docker-Content-Digest", d)
		if r.Method == http.MethodGet {
			w.Write(b)
		}
	default:
		http.NotFound(w, r)
	}
}

// open lets image n's config through, now and from now on.
func (u *gatedUpstream) open(n int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	select {
	case <-u.gates[n]:
	default:
		close(u.gates[n])
	}
}

// move points the tag at image n.
func (u *gatedUpstream) move(n int) {
	u.mu.Lock()
	u.current = n
	u.mu.Unlock()
}

// digest is image n's manifest digest.
func (u *gatedUpstream) digest(n int) string {
	d, _ := u.images[n].Digest()
	return d.String()
}

// imageBlobs is every blob of img (config and layers), by digest, as an
// upstream in a test serves them.
func imageBlobs(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	blobs := map[string][]byte{}
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if blobs[cfg.String()], err = img.RawConfigFile(); err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, _ := l.Digest()
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		blobs[d.String()] = b
	}
	return blobs
}
