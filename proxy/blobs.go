package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/opencontainers/go-digest"

	"kiln/registry/errcode"
)

// ServeBlob answers a GET or HEAD of blob d that repo does not hold yet.
// handled is false when repo is not proxied, or when another request just
// fetched the blob: the caller then serves it from the store. The first
// request for a blob streams it from upstream to its client while writing
// it to the store; the store keeps it only once its digest verified.
// Concurrent requests for it wait for that one fetch.
func (p *Proxy) ServeBlob(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) (handled bool, err error) {
	u, upRepo, ok, err := p.serves(r.Context(), repo)
	if err != nil || !ok {
		return ok, err
	}
	if r.Method == http.MethodHead {
		// Pulls GET blobs; a HEAD is a pusher asking whether to upload,
		// which the local answer serves (and an upstream outage must not
		// fail a push).
		return false, nil
	}
	key := "blob " + repo + "@" + string(d)
	f, leader := p.join(key)
	if !leader {
		select {
		case <-f.done:
		case <-r.Context().Done():
			return true, r.Context().Err()
		}
		if f.err != nil {
			return true, f.err
		}
		return false, nil
	}
	// The caller found the blob missing before it joined; a fetch that
	// finished in between has stored it, and must not be repeated.
	if _, serr := p.store.BlobSize(r.Context(), repo, d); serr == nil {
		p.finish(key, f, nil)
		return false, nil
	}
	err = p.fetchBlob(w, r, u, repo, upRepo, d)
	p.finish(key, f, err)
	if errors.Is(err, errAborted) {
		// Headers are gone: all that is left is to cut the response short.
		panic(http.ErrAbortHandler)
	}
	return true, err
}

// errAborted means a blob failed after its response had started.
var errAborted = errors.New("upstream blob failed mid-stream")

func (p *Proxy) fetchBlob(w http.ResponseWriter, r *http.Request, u *upstream, repo, upRepo string, d digest.Digest) error {
	// The fetch outlives a client that hangs up: the cache still fills.
	ctx := context.WithoutCancel(r.Context())
	p.blobFetches.Add(1)
	resp, err := u.do(ctx, http.MethodGet, upRepo, "blobs/"+string(d), nil)
	if err != nil {
		return blobError(u, d, err)
	}
	defer resp.Body.Close()
	h := w.Header()
	if resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	h.Set("Docker-Content-Digest", string(d))
	h.Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	client := &clientWriter{w: w}
	// The client has the whole blob once the upstream body ends: flush it
	// then, not after the store has synced and committed it.
	body := &flushAtEOF{r: io.TeeReader(resp.Body, client), client: client, rc: http.NewResponseController(w)}
	if _, err := p.store.PutBlob(ctx, repo, d, body); err != nil {
		p.log.Warn("upstream blob not cached", "upstream", u.cfg.Name, "repo", repo, "digest", d, "err", err)
		return errAborted
	}
	p.log.Info("cached from upstream", "upstream", u.cfg.Name, "repo", repo, "digest", d, "bytes", client.n)
	return nil
}

// clientWriter passes bytes on to the client until it fails, then drops
// them, so a client hanging up does not stop the cache from filling.
type clientWriter struct {
	w      io.Writer
	n      int64
	failed bool
}

func (c *clientWriter) Write(b []byte) (int, error) {
	if !c.failed {
		if _, err := c.w.Write(b); err != nil {
			c.failed = true
		}
	}
	c.n += int64(len(b))
	return len(b), nil
}

// flushAtEOF flushes the client's response when the upstream body ends.
type flushAtEOF struct {
	r       io.Reader
	client  *clientWriter
	rc      *http.ResponseController
	flushed bool
}

func (f *flushAtEOF) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if err == io.EOF && !f.flushed {
		f.flushed = true
		if !f.client.failed {
			_ = f.rc.Flush()
		}
	}
	return n, err
}

func blobError(u *upstream, d digest.Digest, err error) error {
	if errors.Is(err, errNotFound) {
		return errcode.BlobUnknown.WithMessage("not found in upstream " + u.cfg.Name)
	}
	return errcode.Internal.WithStatus(http.StatusBadGateway).WithMessage(err.Error() + "; blob " + string(d) + " is not cached")
}
