package build

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// monolithicMax is the largest blob a push uploads in one request.
const monolithicMax = 1 << 20

// preloadBlobs puts the blobs of imgs that repo lacks into it, all at
// once, and reports whether repo then holds every one of them: the
// manifests can go right after. go-containerregistry's push would mount
// the base's layers and upload the rest one after another, a small blob in
// three requests (POST, PATCH, PUT), the first of which makes kiln store
// the session's state durably. Here a small blob (a config, the layer a
// builder made) goes in one POST with its digest (a monolithic upload), a
// layer of another repository on kiln is mounted, and the disk syncs they
// cost overlap. A larger new blob is not preloaded (nor one whose preload
// failed): the push is then left to go-containerregistry.
func (r *Remote) preloadBlobs(repo name.Repository, imgs []v1.Image) (complete bool) {
	blobs, err := listBlobs(imgs, func(l v1.Layer, d v1.Hash) (blob, error) {
		if m, ok := l.(*remote.MountableLayer); ok {
			if from := m.Reference.Context(); from.RegistryStr() == repo.RegistryStr() && from.RepositoryStr() != repo.RepositoryStr() {
				return blob{digest: d, from: from.RepositoryStr()}, nil
			}
		}
		size, err := l.Size()
		if err != nil {
			return blob{}, err
		}
		return blob{digest: d, size: size, content: func() ([]byte, error) { return readLayer(l, size) }}, nil
	})
	return err == nil && r.preloadAll(repo, blobs)
}

// preloadAll preloads blobs into repo, all at once, and reports whether
// repo then holds every one of them.
func (r *Remote) preloadAll(repo name.Repository, blobs []blob) bool {
	there := make([]bool, len(blobs))
	var wg sync.WaitGroup
	for i, b := range blobs {
		wg.Go(func() { there[i] = r.preload(repo, b) })
	}
	wg.Wait()
	return !slices.Contains(there, false)
}

// blob is one blob to preload: mounted from repository from, or
// uploaded whole when it is at most monolithicMax.
type blob struct {
	digest  v1.Hash
	from    string
	size    int64
	content func() ([]byte, error)
}

// listBlobs lists the blobs of imgs (layers and configs) to preload, each
// made by as from a layer and its digest, each digest once: an image's
// layers may repeat, and an index's images share their base's.
func listBlobs(imgs []v1.Image, as func(l v1.Layer, d v1.Hash) (blob, error)) ([]blob, error) {
	var list []blob
	seen := map[v1.Hash]bool{}
	for _, img := range imgs {
		layers, err := imageBlobs(img)
		if err != nil {
			return nil, err
		}
		for _, l := range layers {
			d, err := l.Digest()
			if err != nil {
				return nil, err
			}
			if seen[d] {
				continue
			}
			seen[d] = true
			b, err := as(l, d)
			if err != nil {
				return nil, err
			}
			list = append(list, b)
		}
	}
	return list, nil
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
// it, and reports whether repo has it then.
func (r *Remote) preload(repo name.Repository, b blob) bool {
	base := r.scheme + "://" + repo.RegistryStr() + "/v2/" + repo.RepositoryStr() + "/blobs/"
	resp, err := r.do(http.MethodHead, base+b.digest.String(), "", nil)
	switch {
	case err != nil:
		return false
	case resp.StatusCode == http.StatusOK:
		return true
	case b.from != "":
		resp, err = r.do(http.MethodPost, base+"uploads/?mount="+url.QueryEscape(b.digest.String())+"&from="+url.QueryEscape(b.from), "", nil)
	case b.size <= monolithicMax:
		content, cerr := b.content()
		if cerr != nil || int64(len(content)) != b.size {
			return false
		}
		resp, err = r.do(http.MethodPost, base+"uploads/?digest="+url.QueryEscape(b.digest.String()), "application/octet-stream", content)
	default:
		return false
	}
	if err != nil {
		return false
	}
	if resp.StatusCode == http.StatusAccepted {
		// Not mounted: kiln opened a session, which the push does not use.
		if loc, lerr := resp.Location(); lerr == nil {
			r.do(http.MethodDelete, loc.String(), "", nil)
		}
	}
	return resp.StatusCode == http.StatusCreated
}

// PutManifest puts img's manifest as tag in one request, once every blob
// it names is in tag's repository.
func (r *Remote) PutManifest(tag name.Tag, img v1.Image) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	u := r.scheme + "://" + tag.RegistryStr() + "/v2/" + tag.RepositoryStr() + "/manifests/" + tag.TagStr()
	resp, err := r.do(http.MethodPut, u, string(mt), raw)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT %s: %s", u, resp.Status)
	}
	return nil
}

// do sends one request to kiln and closes its response.
func (r *Remote) do(method, url, contentType string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(r.ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
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
