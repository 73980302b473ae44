package proxy

import (
	"context"

	"kiln/notify"
	"kiln/storage"
)

// SetNotifier sets n to hear of every manifest the cache stores from an
// upstream (a cache.fill event). Call it before serving.
func (p *Proxy) SetNotifier(n *notify.Notifier) { p.notify = n }

// filled publishes the cache fill of m in repo before the pull is
// answered. A failure is logged, not answered: the pull itself succeeded.
func (p *Proxy) filled(ctx context.Context, u *upstream, repo, tag string, m *storage.Manifest) {
	e := notify.Event{Type: notify.CacheFill, Repo: repo, Tag: tag, Digest: string(m.Digest), MediaType: m.MediaType, Size: int64(len(m.Content)), Upstream: u.cfg.Name}
	if err := p.notify.Publish(ctx, e); err != nil {
		p.log.WarnContext(ctx, "cache fill event lost", "repo", repo, "digest", m.Digest, "err", err)
	}
}
