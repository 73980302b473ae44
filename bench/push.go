package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
)

// ensureBlobs generates the blob buffer of the configured size once.
func (r *runner) ensureBlobs() error {
	if r.blobs != nil {
		return nil
	}
	s, err := newBlobSet(r.cfg.BlobSize)
	if err != nil {
		return err
	}
	r.blobs = s
	if s.hashMBs > 0 {
		r.res.add(Metric{Key: "client_sha256_mb_s", Name: "client SHA-256 MB/s (reference)", Unit: "MB/s", Value: s.hashMBs, Higher: true})
	}
	return nil
}

// probeMonolithic finds out whether the registry takes a whole blob in
// the POST that opens the upload (OCI "single POST"). Registries that do
// not answer 202 and want the data in a PUT; those are pushed with
// POST then PUT ?digest=, the spec's other monolithic upload.
func (r *runner) probeMonolithic(ctx context.Context) error {
	if r.monolithic != "" {
		return nil
	}
	content := []byte("kiln bench probe " + r.prefix)
	d := digest.FromBytes(content)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url("/v2/"+r.repo("probe")+"/blobs/uploads/?digest="+d.String()), bytes.NewReader(content))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		drain(resp)
		r.monolithic = "post"
	case http.StatusAccepted:
		drain(resp)
		loc, err := r.resolve(resp.Header.Get("Location"))
		if err != nil {
			return err
		}
		if del, err := http.NewRequestWithContext(ctx, http.MethodDelete, loc, nil); err == nil {
			if resp, err := r.client.Do(del); err == nil {
				drain(resp)
			}
		}
		r.monolithic = "post+put"
		r.res.note("monolithic push: the registry ignores ?digest= on POST (202), so blobs went up as POST then PUT ?digest= with the whole blob")
	default:
		return statusError(req, resp, http.StatusCreated)
	}
	return nil
}

// pushMonolithic pushes Pushes fresh blobs one after another, each in one
// request, and reports bytes / total time.
func (r *runner) pushMonolithic(ctx context.Context) error {
	if err := r.ensureBlobs(); err != nil {
		return err
	}
	if err := r.probeMonolithic(ctx); err != nil {
		return err
	}
	blobs, err := r.freshBlobs(r.cfg.Pushes)
	if err != nil {
		return err
	}
	repo := r.repo("push")
	start := time.Now()
	for _, b := range blobs {
		if err := r.pushWhole(ctx, repo, b); err != nil {
			return err
		}
	}
	el := time.Since(start)
	for _, b := range blobs {
		r.pushed = append(r.pushed, pushedBlob{repo, b})
	}
	r.res.add(Metric{Key: "push_mb_s", Name: "monolithic push MB/s", Unit: "MB/s", Value: mbs(int64(len(blobs))*r.cfg.BlobSize, el), Higher: true})
	return r.verifyPushed(ctx, repo, blobs)
}

// pushChunked pushes Pushes fresh blobs one after another, each as POST,
// ChunkSize PATCHes with Content-Range, and PUT ?digest=.
func (r *runner) pushChunked(ctx context.Context) error {
	if err := r.ensureBlobs(); err != nil {
		return err
	}
	blobs, err := r.freshBlobs(r.cfg.Pushes)
	if err != nil {
		return err
	}
	repo := r.repo("chunked")
	start := time.Now()
	for _, b := range blobs {
		if err := r.pushChunks(ctx, repo, b); err != nil {
			return err
		}
	}
	el := time.Since(start)
	for _, b := range blobs {
		r.pushed = append(r.pushed, pushedBlob{repo, b})
	}
	r.res.add(Metric{Key: "chunked_mb_s", Name: fmt.Sprintf("chunked push (%s PATCHes) MB/s", FormatSize(r.cfg.ChunkSize)), Unit: "MB/s", Value: mbs(int64(len(blobs))*r.cfg.BlobSize, el), Higher: true})
	return r.verifyPushed(ctx, repo, blobs)
}

func (r *runner) freshBlobs(n int) ([]*blob, error) {
	blobs := make([]*blob, n)
	for i := range blobs {
		b, err := r.blobs.next()
		if err != nil {
			return nil, err
		}
		blobs[i] = b
	}
	return blobs, nil
}

// pushWhole uploads b in one request: POST ?digest=, or POST then PUT.
func (r *runner) pushWhole(ctx context.Context, repo string, b *blob) error {
	if err := r.probeMonolithic(ctx); err != nil {
		return err
	}
	target := r.url("/v2/" + repo + "/blobs/uploads/?digest=" + b.digest.String())
	method := http.MethodPost
	if r.monolithic == "post+put" {
		loc, err := r.startUpload(ctx, repo)
		if err != nil {
			return err
		}
		target, method = addQuery(loc, "digest", b.digest.String()), http.MethodPut
	}
	req, err := http.NewRequestWithContext(ctx, method, target, b.section(0, b.size()))
	if err != nil {
		return err
	}
	req.ContentLength = b.size()
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(b.section(0, b.size())), nil }
	req.Header.Set("Content-Type", "application/octet-stream")
	return r.expectCreated(req, b)
}

// startUpload opens an upload session and returns its absolute URL.
func (r *runner) startUpload(ctx context.Context, repo string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url("/v2/"+repo+"/blobs/uploads/"), nil)
	if err != nil {
		return "", err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", statusError(req, resp, http.StatusAccepted)
	}
	drain(resp)
	return r.resolve(resp.Header.Get("Location"))
}

func (r *runner) pushChunks(ctx context.Context, repo string, b *blob) error {
	loc, err := r.startUpload(ctx, repo)
	if err != nil {
		return err
	}
	for off := int64(0); off < b.size(); {
		n := min(r.cfg.ChunkSize, b.size()-off)
		req, err := http.NewRequestWithContext(ctx, http.MethodPatch, loc, b.section(off, n))
		if err != nil {
			return err
		}
		o := off
		req.ContentLength = n
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(b.section(o, n)), nil }
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(off+n-1, 10))
		resp, err := r.client.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusAccepted {
			return statusError(req, resp, http.StatusAccepted)
		}
		drain(resp)
		if loc, err = r.resolve(resp.Header.Get("Location")); err != nil {
			return err
		}
		off += n
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, addQuery(loc, "digest", b.digest.String()), nil)
	if err != nil {
		return err
	}
	return r.expectCreated(req, b)
}

// expectCreated sends req and checks the 201 names b's digest.
func (r *runner) expectCreated(req *http.Request, b *blob) error {
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return statusError(req, resp, http.StatusCreated)
	}
	drain(resp)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != b.digest.String() {
		return fmt.Errorf("%s %s: Docker-Content-Digest %s, want %s", req.Method, req.URL.Path, got, b.digest)
	}
	return nil
}

// verifyPushed checks, after timing, that the registry has each blob with
// its size (HEAD); the pull figures read them back and hash them.
func (r *runner) verifyPushed(ctx context.Context, repo string, blobs []*blob) error {
	for _, b := range blobs {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, r.url("/v2/"+repo+"/blobs/"+b.digest.String()), nil)
		if err != nil {
			return err
		}
		resp, err := r.client.Do(req)
		if err != nil {
			return err
		}
		drain(resp)
		if resp.StatusCode != http.StatusOK || resp.ContentLength != b.size() {
			return fmt.Errorf("HEAD %s after push: %s, %d bytes, want 200, %d bytes", req.URL.Path, resp.Status, resp.ContentLength, b.size())
		}
	}
	r.res.Verified += len(blobs)
	return nil
}

// ensurePushed makes sure at least n blobs are in the registry, pushing
// the missing ones untimed (when only pull figures are asked for).
func (r *runner) ensurePushed(ctx context.Context, n int) error {
	if len(r.pushed) >= n {
		return nil
	}
	if err := r.ensureBlobs(); err != nil {
		return err
	}
	repo := r.repo("pull")
	blobs, err := r.freshBlobs(n - len(r.pushed))
	if err != nil {
		return err
	}
	for _, b := range blobs {
		if err := r.pushWhole(ctx, repo, b); err != nil {
			return err
		}
		r.pushed = append(r.pushed, pushedBlob{repo, b})
	}
	return nil
}

// mbs is a rate in MB/s (10^6 bytes per second).
func mbs(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}
