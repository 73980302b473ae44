package proxy

import (
	"context"

	"kiln/distspec"
)

// CheckPush refuses a push to a mirror copy: a repository is either pushed
// to or filled from an upstream, never both, so a revalidation can never
// replace a user's image with the upstream's, nor a push the upstream's.
// Names under an upstream's prefix are always its copies; a mirror name
// (un-prefixed) is one while the mirror holds a copy for it, until an
// operator deletes from that copy (see CopyDeleted).
func (p *Proxy) CheckPush(ctx context.Context, repo string) error {
	u, upRepo, ok := p.Route(repo)
	if !ok {
		return nil
	}
	if p.Prefixed(repo) {
		return denied(repo, u, upRepo, "names under "+u.cfg.Name+"/ are always its copies")
	}
	loc, err := p.locate(ctx, repo)
	if err != nil || !loc.proxied || !loc.held {
		return err
	}
	return denied(repo, u, upRepo, "an operator frees the name by deleting the copy (DELETE of "+loc.stored+"'s tags or manifests)")
}

func denied(repo string, u *upstream, upRepo, why string) error {
	return distspec.Denied.WithMessage(repo + " is a mirror copy of " + upRepo + " from upstream " + u.cfg.Name + ": pushes to it are refused; " + why)
}

// CopyDeleted is told that an operator deleted a tag or manifest of repo.
// When repo is a copy of the docker.io mirror, its mirror name becomes an
// ordinary repository, which pushes may take and pulls never send
// upstream. (Left a copy, the next pull would fill it again before any
// push.) The copy under the mirror's prefix stays one: a pull by that
// name fills it again, and takes the mirror name back unless a push took
// it first.
func (p *Proxy) CopyDeleted(ctx context.Context, repo string) error {
	if p.mirror == nil {
		return nil
	}
	if u, _, _ := p.Route(repo); u != p.mirror {
		return nil
	}
	proxied, _, err := p.store.IsProxied(ctx, repo)
	if err != nil || !proxied {
		return err
	}
	p.log.InfoContext(ctx, "mirror copy deleted: its mirror name is an ordinary repository now", "upstream", p.mirror.cfg.Name, "repo", repo)
	return p.store.UnmarkProxied(ctx, repo)
}
