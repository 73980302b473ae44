package proxy

import (
	"context"

	"kiln/distspec"
)

// CheckPush refuses a push to a mirror copy: a repository is either pushed
// to or filled from an upstream, never both, so a revalidation can never
// replace a user's image with the upstream's, nor a push the upstream's.
// Names under an upstream's prefix are always its copies; an un-prefixed
// name the docker.io mirror filled is one until an operator deletes from
// it (see CopyDeleted).
func (p *Proxy) CheckPush(ctx context.Context, repo string) error {
	u, upRepo, ok := p.Route(repo)
	if !ok {
		return nil
	}
	if p.Prefixed(repo) {
		return denied(repo, u, upRepo, "names under "+u.cfg.Name+"/ are always its copies")
	}
	proxied, _, err := p.store.IsProxied(ctx, repo)
	if err != nil || !proxied {
		return err
	}
	return denied(repo, u, upRepo, "an operator frees the name by deleting the copy (DELETE of its tags or manifests)")
}

func denied(repo string, u *upstream, upRepo, why string) error {
	return distspec.Denied.WithMessage(repo + " is a mirror copy of " + upRepo + " from upstream " + u.cfg.Name + ": pushes to it are refused; " + why)
}

// CopyDeleted is told that an operator deleted a tag or manifest of repo:
// a mirror copy of the docker.io mirror then becomes an ordinary
// repository, which pushes may take and pulls never send upstream. (Left a
// copy, the next pull would fill it again before any push.)
func (p *Proxy) CopyDeleted(ctx context.Context, repo string) error {
	if p.mirror == nil || p.Prefixed(repo) {
		return nil
	}
	proxied, _, err := p.store.IsProxied(ctx, repo)
	if err != nil || !proxied {
		return err
	}
	p.log.InfoContext(ctx, "mirror copy deleted: the name is an ordinary repository now", "upstream", p.mirror.cfg.Name, "repo", repo)
	return p.store.UnmarkProxied(ctx, repo)
}
