package proxy

import (
	"context"
	"strings"
)

// mirrorName is the upstream that also serves names without a registry
// prefix, the way a Docker daemon's registry-mirrors asks for them.
const mirrorName = "docker.io"

// Route maps a repository name to its upstream and the name there:
// "docker.io/library/python" → docker.io, "library/python". Un-prefixed
// names go to the docker.io upstream, if there is one, as Docker Hub
// names them ("python" is "library/python").
func (p *Proxy) Route(repo string) (*upstream, string, bool) {
	if first, rest, ok := strings.Cut(repo, "/"); ok {
		if u, found := p.upstreams[first]; found {
			return u, hubName(u, rest), true
		}
	}
	if p.mirror != nil {
		return p.mirror, hubName(p.mirror, repo), true
	}
	return nil, "", false
}

// Prefixed reports whether repo names an upstream explicitly
// ("docker.io/library/python"), as build rules' upstream bases do.
func (p *Proxy) Prefixed(repo string) bool {
	first, _, ok := strings.Cut(repo, "/")
	return ok && p.upstreams[first] != nil
}

// hubName adds Docker Hub's implicit "library/" to one-component names.
func hubName(u *upstream, repo string) string {
	if u.cfg.Name == mirrorName && !strings.Contains(repo, "/") {
		return "library/" + repo
	}
	return repo
}

// cacheName is the one repository the cache keeps an upstream repository
// in, whichever name pulled it: the upstream's prefix and the name there
// ("docker.io/library/busybox" for busybox, library/busybox and
// docker.io/busybox alike). The prefixed name, because it can never be a
// repository users push to, and because build rules watch upstream bases
// by it: a tag the cache moves there is the tag their rebuilds wait for.
func cacheName(u *upstream, upRepo string) string { return u.cfg.Name + "/" + upRepo }

// location is where a repository name's content lives.
type location struct {
	u      *upstream
	upRepo string // the name upstream
	stored string // the repository in the store
	// proxied: the cache fills stored from u. False for a name no upstream
	// serves, a repository users pushed to, and a freed mirror name.
	proxied bool
	held    bool // stored holds content already
}

// locate finds where repo's content lives. A name under an upstream's
// prefix is its cache name. A mirror name (un-prefixed) is the mirror's
// cache name too, unless the store holds the name itself: a repository
// users pushed to, or a copy the mirror filled before copies were kept
// under the cache name; or unless an operator freed it by deleting from
// the copy under the cache name (see CopyDeleted).
func (p *Proxy) locate(ctx context.Context, repo string) (location, error) {
	u, upRepo, ok := p.Route(repo)
	if !ok {
		return location{stored: repo}, nil
	}
	loc := location{u: u, upRepo: upRepo, stored: cacheName(u, upRepo), proxied: true}
	if p.Prefixed(repo) {
		return loc, nil
	}
	proxied, exists, err := p.store.IsProxied(ctx, repo)
	if err != nil {
		return location{}, err
	}
	if exists {
		loc.stored, loc.proxied, loc.held = repo, proxied, true
		return loc, nil
	}
	copied, held, err := p.store.IsProxied(ctx, loc.stored)
	if err != nil {
		return location{}, err
	}
	if held && !copied {
		return location{u: u, upRepo: upRepo, stored: repo}, nil // freed
	}
	loc.held = held
	return loc, nil
}
