package proxy

import (
	"context"
	"errors"
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
		p.cacheResult(KindBlob, ResultCoalesced)
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
		p.cacheResult(KindBlob, ResultHit)
		return false, nil
	}
	p.cacheResult(KindBlob, ResultMiss)
	// fetchBlob finishes the flight once the store kept (or refused) the
	// blob: after the client has it, possibly after this handler returned.
	err = p.fetchBlob(w, r, u, repo, upRepo, d, func(err error) { p.finish(key, f, err) })
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
// connection).
func (p *Proxy) fetchBlob(w http.ResponseWriter, r *http.Request, u *upstream, repo, upRepo string, d digest.Digest, done func(error)) error {
	// The fetch outlives a client that hangs up: the cache still fills.
	ctx := context.WithoutCancel(r.Context())
	p.blobFetches.Add(1)
	resp, err := u.do(ctx, http.MethodGet, upRepo, "blobs/"+string(d), nil)
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
	w.WriteHeader(http.StatusOK)

	// One goroutine reads the upstream body into chunks and hands each to
	// the client (written here, in the handler's goroutine) and to the
	// store (a second goroutine hashing, writing and syncing it): the
	// client never waits for the store, only for the upstream.
	t := newTee(resp.Body)
	go func() {
		t.read()
		resp.Body.Close()
	}()
	stored := make(chan error, 1)
	go func() {
		_, err := p.store.PutBlob(ctx, repo, d, t.storeReader())
		t.storeDone(err)
		stored <- err
	}()
	n, clientOK := t.serveClient(w)
	commit := func(err error) error {
		if err != nil {
			p.log.WarnContext(ctx, "upstream blob not cached", "upstream", u.cfg.Name, "repo", repo, "digest", d, "err", err)
			done(errAborted)
			return errAborted
		}
		p.log.InfoContext(ctx, "cached from upstream", "upstream", u.cfg.Name, "repo", repo, "digest", d, "bytes", n)
		done(nil)
		return nil
	}
	if !clientOK || t.readErr() != nil {
		// The client is gone (the cache still fills) or the upstream failed
		// (the store fails too, and the response must be cut short).
		return commit(<-stored)
	}
	// The client has the whole blob once the upstream body ends: flush it
	// then, and leave the store to verify, sync and commit it.
	_ = http.NewResponseController(w).Flush()
	go func() { _ = commit(<-stored) }()
	return nil
}

func blobError(u *upstream, d digest.Digest, err error) error {
	if errors.Is(err, errNotFound) {
		return errcode.BlobUnknown.WithMessage("not found in upstream " + u.cfg.Name)
	}
	return errcode.Internal.WithStatus(http.StatusBadGateway).WithMessage(err.Error() + "; blob " + string(d) + " is not cached")
}
