package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"
)

// WatchedTag is a proxied tag that build rules are FROM.
type WatchedTag struct {
	Repo string // as kiln names it, e.g. docker.io/library/python
	Tag  string
}

// Watch polls each watched tag's upstream every watch_interval with a HEAD
// and, when the upstream digest differs from the cached one, caches the new
// manifest: the tag moves in the store, which triggers the builds on it as
// a push would. It returns when ctx ends.
func (p *Proxy) Watch(ctx context.Context, tags []WatchedTag) {
	byUpstream := map[*upstream][]WatchedTag{}
	for _, t := range tags {
		if u, _, ok := p.Route(t.Repo); ok {
			byUpstream[u] = append(byUpstream[u], t)
		}
	}
	done := make(chan struct{})
	for u, ts := range byUpstream {
		go func() {
			defer func() { done <- struct{}{} }()
			p.watchUpstream(ctx, u, ts)
		}()
	}
	for range byUpstream {
		<-done
	}
}

func (p *Proxy) watchUpstream(ctx context.Context, u *upstream, tags []WatchedTag) {
	t := time.NewTicker(u.cfg.WatchInterval)
	defer t.Stop()
	for {
		for _, wt := range tags {
			if err := p.poll(ctx, u, wt); err != nil && ctx.Err() == nil {
				p.log.Warn("watching upstream tag", "upstream", u.cfg.Name, "repo", wt.Repo, "tag", wt.Tag, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// poll checks one watched tag with a HEAD and caches it when it moved.
func (p *Proxy) poll(ctx context.Context, u *upstream, wt WatchedTag) error {
	loc, err := p.locate(ctx, wt.Repo)
	if err != nil || !loc.proxied {
		return err
	}
	hctx, cancel := u.withTimeout(ctx)
	resp, err := u.do(hctx, http.MethodHead, loc.upRepo, "manifests/"+wt.Tag, http.Header{"Accept": {manifestAccept}})
	cancel()
	if err != nil {
		return err
	}
	resp.Body.Close()
	remote := digest.Digest(resp.Header.Get("Docker-Content-Digest"))
	cached, err := p.store.ResolveTag(ctx, loc.stored, wt.Tag)
	if err == nil && cached == remote {
		return p.store.RefreshTag(ctx, loc.stored, wt.Tag)
	}
	p.log.Info("upstream tag moved", "upstream", u.cfg.Name, "repo", wt.Repo, "tag", wt.Tag, "from", cached, "to", remote)
	_, err = p.fetchManifest(ctx, u, loc.stored, loc.upRepo, wt.Tag, wt.Tag)
	return err
}
