package build

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// monolithicMax is the largest blob a push uploads in one request.
const monolithicMax = 1 << 20

// preloadBlobs puts the blobs of imgs that repo lacks into it before
// go-containerregistry pushes the images, all at once: it then finds them
// there and only puts the manifest. Its own push would mount the base's
// layers and upload the rest one after another, a small blob in three
// requests (POST, PATCH, PUT), the first of which makes kiln store the
// session's state durably. Here a small blob (a config, the layer a
// builder made) goes in one POST with its digest (a monolithic upload), a
// layer of another repository on kiln is mounted, and the disk syncs they
// cost overlap. Larger blobs are left to go-containerregistry, and so is
// any blob whose preload failed.
func (r *Remote) preloadBlobs(repo name.Repository, imgs []v1.Image) {
	var blobs []blob
	seen := map[v1.Hash]bool{}
	add := func(b blob) {
		if !seen[b.digest] {
			seen[b.digest] = true
			blobs = append(blobs, b)
		}
	}
	for _, img := range imgs {
		if cfg, err := img.RawConfigFile(); err == nil && len(cfg) <= monolithicMax {
			if d, err := img.ConfigName(); err == nil {
				add(blob{digest: d, size: int64(len(cfg)), content: func() ([]byte, error) { return cfg, nil }})
			}
		}
		layers, err := img.Layers()
		if err != nil {
			continue
		}
		for _, l := range layers {
			d, err := l.Digest()
			if err != nil {
				continue
			}
			if m, ok := l.(*remote.MountableLayer); ok {
				if from := m.Reference.Context(); from.RegistryStr() == repo.RegistryStr() && from.RepositoryStr() != repo.RepositoryStr() {
					add(blob{digest: d, from: from.RepositoryStr()})
				}
				continue
			}
			size, err := l.Size()
			if err != nil || size > monolithicMax {
				continue
			}
			add(blob{digest: d, size: size, content: func() ([]byte, error) { return readLayer(l, size) }})
		}
	}
	var wg sync.WaitGroup
	for _, b := range blobs {
		wg.Go(func() { r.preload(repo, b) })
	}
	wg.Wait()
}

// blob is one blob to preload: mounted from repository from, or
// uploaded whole.
type blob struct {
	digest  v1.Hash
	from    string
	size    int64
	content func() ([]byte, error)
}

func readLayer(l v1.Layer, size int64) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, size+1))
}

// preload mounts or uploads b into repo in one request, unless repo has
// it.
func (r *Remote) preload(repo name.Repository, b blob) {
	base := r.scheme + "://" + repo.RegistryStr() + "/v2/" + repo.RepositoryStr() + "/blobs/"
	if resp, err := r.do(http.MethodHead, base+b.digest.String(), nil); err != nil || resp.StatusCode == http.StatusOK {
		return
	}
	var resp *http.Response
	var err error
	if b.from != "" {
		resp, err = r.do(http.MethodPost, base+"uploads/?mount="+url.QueryEscape(b.digest.String())+"&from="+url.QueryEscape(b.from), nil)
	} else {
		content, cerr := b.content()
		if cerr != nil || int64(len(content)) != b.size {
			return
		}
		resp, err = r.do(http.MethodPost, base+"uploads/?digest="+url.QueryEscape(b.digest.String()), content)
	}
	if err == nil && resp.StatusCode == http.StatusAccepted {
		// Not mounted: kiln opened a session, which the push does not use.
		if loc, lerr := resp.Location(); lerr == nil {
			r.do(http.MethodDelete, loc.String(), nil)
		}
	}
}

// do sends one request to kiln and closes its response.
func (r *Remote) do(method, url string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(r.ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp, nil
}

// imagesOf returns the images of idx, and of the indexes it holds.
func imagesOf(idx v1.ImageIndex) ([]v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var imgs []v1.Image
	for _, desc := range im.Manifests {
		switch {
		case desc.MediaType.IsImage():
			img, err := idx.Image(desc.Digest)
			if err != nil {
				return nil, err
			}
			imgs = append(imgs, img)
		case desc.MediaType.IsIndex():
			child, err := idx.ImageIndex(desc.Digest)
			if err != nil {
				return nil, err
			}
			more, err := imagesOf(child)
			if err != nil {
				return nil, err
			}
			imgs = append(imgs, more...)
		}
	}
	return imgs, nil
}
