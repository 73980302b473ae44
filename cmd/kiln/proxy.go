package main

import (
	"context"
	"log/slog"

	"kiln/buildhook"
	"kiln/config"
	"kiln/proxy"
	"kiln/registry"
	"kiln/storage"
)

// newUpstream builds the pull-through cache for the configured upstreams;
// nil (and a nil registry.Upstream) when there are none.
func newUpstream(cfg *config.Config, store *storage.Store, logger *slog.Logger) (*proxy.Proxy, registry.Upstream, error) {
	p, err := proxy.New(store, cfg.Proxy, logger)
	if err != nil || p == nil {
		return nil, nil, err
	}
	p.SetMaxBlobSize(cfg.Limits.MaxBlobSize)
	for _, u := range cfg.Proxy {
		logger.Info("mirroring upstream", "name", u.Name, "url", u.URL, "ttl", u.TTL)
	}
	return p, p, nil
}

// waitFills lets cache fills that outlived their requests commit, within
// what is left of the shutdown timeout.
func waitFills(ctx context.Context, p *proxy.Proxy, logger *slog.Logger) {
	done := make(chan struct{})
	go func() {
		p.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		logger.Warn("cache fills still running at the shutdown timeout")
	}
}

// upstreamNames lists the configured upstreams' names.
func upstreamNames(cfg *config.Config) []string {
	var names []string
	for _, u := range cfg.Proxy {
		names = append(names, u.Name)
	}
	return names
}

// watchUpstreamBases polls the upstream tags build rules are FROM until ctx
// ends, so a new upstream base rebuilds them; in a cluster only the leader
// of upstream watching does, so each tag is polled once per interval.
func watchUpstreamBases(ctx context.Context, node *clusterNode, p *proxy.Proxy, builds *buildhook.Service) {
	if p == nil {
		return
	}
	var tags []proxy.WatchedTag
	for _, b := range builds.Graph().Watched() {
		if p.Prefixed(b.Repo) {
			tags = append(tags, proxy.WatchedTag{Repo: b.Repo, Tag: b.Tag})
		}
	}
	node.lead(ctx, taskUpstreamWatch, len(tags) > 0, func(ctx context.Context) { p.Watch(ctx, tags) })
}
