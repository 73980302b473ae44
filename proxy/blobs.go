package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/opencontainers/go-digest"

	"kiln/distspec"
	"kiln/storage"
)

// ServeBlob answers a GET or HEAD of blob d that repo does not hold yet.
// handled is false when repo is not proxied, or when another request just
// fetched the blob: the caller then serves it from the store. The first
// request for a blob streams it from upstream to its client while writing
// it to the store; the store keeps it only once its digest verified.
// Concurrent requests for it wait for that one fetch.
func (p *Proxy) ServeBlob(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) (handled bool, err error) {
	loc, err := p.locate(r.Context(), repo)
	if err != nil || !loc.proxied {
		return false, err
	}
	u, upRepo, repo := loc.u, loc.upRepo, loc.stored
	if r.Method == http.MethodHead {
		// Pulls GET blobs; a HEAD is a pusher asking whether to upload,
		// which the local answer serves (and an upstream outage must not
		// fail a push).
		return false, nil
	}
	key := "blob " + repo + "@" + string(d)
	f, leader := p.join(key)
	if !leader {
		p.cacheResult(KindBlob, ResultCoalesced)
		f.waiters.Add(1) // the fetch goes on for this request if its leader's client leaves
		select {
		case <-f.done:
			f.waiters.Add(-1)
		case <-r.Context().Done():
			f.waiters.Add(-1)
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
		p.cacheResult(KindBlob, ResultHit)
		return false, nil
	}
	p.cacheResult(KindBlob, ResultMiss)
	// fetchBlob finishes the flight once the store kept (or refused) the
	// blob: after the client has it, possibly after this handler returned.
	err = p.fetchBlob(w, r, u, repo, upRepo, d, f, func(err error) { p.finish(key, f, err) })
	if errors.Is(err, errAborted) {
		// Headers are gone: all that is left is to cut the response short.
		panic(http.ErrAbortHandler)
	}
	return true, err
}

// errAborted means a blob failed after its response had started.
var errAborted = errors.New("upstream blob failed mid-stream")

// fetchBlob streams blob d from upstream to the client and the store. It
// calls done exactly once, with the flight's outcome: before returning
// when the upstream or the store failed (errAborted is then returned, to
// cut the response short), else from a goroutine once the store committed
// the blob, so the client, which has the whole blob by then, need not wait
// for the store's sync and commit (nor does its next request on the same
// connection). The client's copy is verified on its own: its last bytes
// are sent once the digest matched.
func (p *Proxy) fetchBlob(w http.ResponseWriter, r *http.Request, u *upstream, repo, upRepo string, d digest.Digest, f *flight, done func(error)) error {
	// The fetch outlives a client that hangs up, for a while: the cache
	// still fills.
	ctx := context.WithoutCancel(r.Context())
	p.blobFetches.Add(1)
	resp, err := u.do(ctx, http.MethodGet, upRepo, "blobs/"+string(d), nil)
	if err == nil && p.maxBlobSize > 0 && resp.ContentLength > p.maxBlobSize {
		resp.Body.Close()
		err = distspec.SizeInvalid.WithStatus(http.StatusBadGateway).WithMessage(fmt.Sprintf(
			"upstream %s's blob %s is %d bytes, larger than limits.max_blob_size (%d)", u.cfg.Name, d, resp.ContentLength, p.maxBlobSize))
	}
	if err == nil {
		// A mirror copy from its first blob on: a name pulled through the
		// mirror never turns into a local repository.
		if err = p.store.MarkProxied(ctx, repo); err != nil {
			resp.Body.Close()
		}
	}
	if err != nil {
		err = blobError(u, d, err)
		done(err)
		return err
	}
	h := w.Header()
	if resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	h.Set("Docker-Content-Digest", string(d))
	h.Set("Content-Type", "application/octet-stream")
	// The status goes out with the first bytes of the body: until then a
	// failure can still be a proper error response.
	body := &bodyWriter{w: w}

	// One goroutine reads the upstream body into chunks, hashing them, and
	// hands each to the client (written here, in the handler's goroutine)
	// and to the store (a second goroutine writing and syncing it, which
	// takes the digest the reader computed): the client never waits for
	// the store, only for the upstream, and each byte is hashed once.
	t := newTee(resp.Body, d.Algorithm(), p.maxBlobSize, p.orphanLimit, func() bool { return f.waiters.Load() > 0 })
	p.fills.Go(func() {
		t.read()
		resp.Body.Close()
	})
	stored := make(chan error, 1)
	p.fills.Go(func() {
		_, err := p.store.PutHashedBlob(ctx, repo, d, t.storeReader(), t.digest)
		t.storeDone(err)
		stored <- err
	})
	n, out := t.serveClient(r.Context(), body, d)
	commit := func(err error) error {
		if out == clientMismatch || errors.Is(err, storage.ErrDigestMismatch) {
			p.mismatches.Add(1)
		}
		if err == nil && out == clientMismatch {
			err = storage.ErrDigestMismatch // cannot be: the store hashed the same bytes
		}
		if err != nil {
			p.log.WarnContext(ctx, "upstream blob not cached", "upstream", u.cfg.Name, "repo", repo, "digest", d, "err", err)
			done(errAborted)
			return errAborted
		}
		p.log.InfoContext(ctx, "cached from upstream", "upstream", u.cfg.Name, "repo", repo, "digest", d, "bytes", n)
		done(nil)
		if p.blobStored != nil {
			p.blobStored(repo, n)
		}
		return nil
	}
	if out != clientServed {
		// The client is gone (the cache may still fill), or the upstream
		// failed or sent the wrong bytes (the store fails too, and the
		// response must be cut short).
		err := commit(<-stored)
		switch {
		case out == clientLeft:
			return err
		case !body.started:
			for _, k := range []string{"Content-Length", "Docker-Content-Digest", "Content-Type"} {
				h.Del(k)
			}
			return cutError(u, d, out, t.readErr())
		default:
			return errAborted
		}
	}
	// The client has the whole blob, verified: flush it, and leave the
	// store to verify, sync and commit it.
	_ = http.NewResponseController(w).Flush()
	p.fills.Go(func() { _ = commit(<-stored) })
	return nil
}

// bodyWriter notes whether any of the body (and with it the status) went
// out.
type bodyWriter struct {
	w       http.ResponseWriter
	started bool
}

func (b *bodyWriter) Write(p []byte) (int, error) {
	b.started = true
	return b.w.Write(p)
}

// cutError is the error a client gets for a blob that failed before any of
// it was sent.
func cutError(u *upstream, d digest.Digest, out clientOutcome, readErr error) error {
	switch {
	case out == clientMismatch:
		return distspec.DigestInvalid.WithStatus(http.StatusBadGateway).WithMessage("upstream " + u.cfg.Name + " sent bytes that do not match " + string(d) + "; not cached")
	case errors.Is(readErr, errTooLarge):
		return distspec.SizeInvalid.WithStatus(http.StatusBadGateway).WithMessage("upstream " + u.cfg.Name + "'s blob " + string(d) + " is larger than limits.max_blob_size")
	default:
		return distspec.Internal.WithStatus(http.StatusBadGateway).WithMessage(fmt.Sprintf("upstream %s failed sending blob %s: %v; not cached", u.cfg.Name, d, readErr))
	}
}

func blobError(u *upstream, d digest.Digest, err error) error {
	var ae *distspec.Error
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, errNotFound) {
		return distspec.BlobUnknown.WithMessage("not found in upstream " + u.cfg.Name)
	}
	return distspec.Internal.WithStatus(http.StatusBadGateway).WithMessage(err.Error() + "; blob " + string(d) + " is not cached")
}
