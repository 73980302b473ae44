package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"kiln/distspec"
	"kiln/storage"
)

// manifestAccept is every manifest type kiln stores.
var manifestAccept = strings.Join(storage.ManifestMediaTypes, ", ")

// Manifest returns manifest tag (or digest d when tag is "") of repo for a
// pull. handled is false when repo is not proxied. A cached tag younger
// than its upstream's TTL is served as is; an older one is revalidated
// with a HEAD; when the upstream is down the cache answers.
func (p *Proxy) Manifest(ctx context.Context, repo, tag string, d digest.Digest) (m *storage.Manifest, handled bool, err error) {
	loc, err := p.locate(ctx, repo)
	if err != nil || !loc.proxied {
		return nil, false, err
	}
	u, upRepo, repo := loc.u, loc.upRepo, loc.stored
	if tag == "" {
		m, err = p.store.GetManifest(ctx, repo, d)
		if err == nil || !errors.Is(err, storage.ErrManifestUnknown) {
			if err == nil {
				p.cacheResult(KindManifest, ResultHit)
			}
			return m, true, err // a digest never needs the upstream again
		}
		m, err = p.fetchMissingManifest(ctx, u, repo, upRepo, string(d), "")
		return m, true, err
	}
	age, err := p.store.TagAge(ctx, repo, tag)
	cached := err == nil
	if cached && p.fresh(u, age) {
		m, err = p.local(ctx, repo, tag)
		if err == nil {
			p.cacheResult(KindManifest, ResultHit)
		}
		return m, true, err
	}
	if cached {
		m, err = p.revalidate(ctx, u, repo, upRepo, tag)
		return m, true, err
	}
	m, err = p.fetchMissingManifest(ctx, u, repo, upRepo, tag, tag)
	return m, true, err
}

// fresh reports whether a tag cached at age is younger than u's TTL.
func (p *Proxy) fresh(u *upstream, age time.Time) bool { return p.now().Sub(age) < u.cfg.TTL }

func (p *Proxy) local(ctx context.Context, repo, tag string) (*storage.Manifest, error) {
	d, err := p.store.ResolveTag(ctx, repo, tag)
	if err != nil {
		return nil, err
	}
	return p.store.GetManifest(ctx, repo, d)
}

// revalidate asks the upstream with a HEAD whether a cached tag moved.
func (p *Proxy) revalidate(ctx context.Context, u *upstream, repo, upRepo, tag string) (*storage.Manifest, error) {
	result := ResultRevalidated
	defer func() { p.cacheResult(KindManifest, result) }()
	if u.health.recentlyDown() {
		// It failed moments ago: answer now rather than wait for its
		// timeout again. The first pull after the window asks it again.
		result = ResultStale
		p.log.DebugContext(ctx, "serving cached tag: upstream down", "upstream", u.cfg.Name, "repo", repo, "tag", tag)
		return p.local(ctx, repo, tag)
	}
	key := "tag " + repo + ":" + tag
	f, leader := p.join(key)
	if !leader {
		<-f.done
		return p.local(ctx, repo, tag)
	}
	var err error
	defer func() { p.finish(key, f, err) }()
	// Another revalidation may have finished since the caller saw the tag
	// stale: it is fresh again, no HEAD needed.
	if age, aerr := p.store.TagAge(ctx, repo, tag); aerr == nil && p.fresh(u, age) {
		return p.local(ctx, repo, tag)
	}
	cur, _ := p.store.ResolveTag(ctx, repo, tag)
	hctx, cancel := u.withTimeout(context.WithoutCancel(ctx))
	resp, herr := u.do(hctx, http.MethodHead, upRepo, "manifests/"+tag, http.Header{"Accept": {manifestAccept}})
	cancel()
	switch {
	case herr != nil:
		result = ResultStale
		p.log.WarnContext(ctx, "serving cached tag: upstream did not confirm it", "repo", repo, "tag", tag, "err", herr)
	case digest.Digest(resp.Header.Get("Docker-Content-Digest")) == cur:
		resp.Body.Close()
		err = p.store.RefreshTag(ctx, repo, tag)
	default:
		resp.Body.Close()
		var m *storage.Manifest
		m, err = p.fetchManifestLocked(ctx, u, repo, upRepo, tag, tag)
		if err == nil {
			return m, nil
		}
		if isDown(err) {
			result = ResultStale
			p.log.WarnContext(ctx, "serving cached tag: upstream failed", "repo", repo, "tag", tag, "err", err)
			err = nil
		} else {
			return nil, err
		}
	}
	return p.local(ctx, repo, tag)
}

// fetchManifest fetches ref from upstream and stores it (as tag, when set),
// once for concurrent callers.
func (p *Proxy) fetchManifest(ctx context.Context, u *upstream, repo, upRepo, ref, tag string) (*storage.Manifest, error) {
	return p.fetchManifestOnce(ctx, u, repo, upRepo, ref, tag, false)
}

// fetchMissingManifest is fetchManifest for a pull that found ref missing
// from the store: its leader first looks again, since a fetch of the same
// reference may have finished between that look and the join. It tells
// the cache observer which of those it was.
func (p *Proxy) fetchMissingManifest(ctx context.Context, u *upstream, repo, upRepo, ref, tag string) (*storage.Manifest, error) {
	return p.fetchManifestOnce(ctx, u, repo, upRepo, ref, tag, true)
}

func (p *Proxy) fetchManifestOnce(ctx context.Context, u *upstream, repo, upRepo, ref, tag string, recheck bool) (*storage.Manifest, error) {
	key := "manifest " + repo + ":" + ref
	f, leader := p.join(key)
	if !leader {
		if recheck {
			p.cacheResult(KindManifest, ResultCoalesced)
		}
		<-f.done
		if f.err != nil {
			return nil, f.err
		}
		if tag != "" {
			return p.local(ctx, repo, tag)
		}
		return p.store.GetManifest(ctx, repo, digest.Digest(ref))
	}
	if recheck {
		if m := p.cachedAfterJoin(ctx, u, repo, ref, tag); m != nil {
			p.finish(key, f, nil)
			p.cacheResult(KindManifest, ResultHit)
			return m, nil
		}
		p.cacheResult(KindManifest, ResultMiss)
	}
	// Stored before the client gets it. (Answering first and storing
	// alongside measured no faster: the store then competes with the
	// pull's blob requests for the same 2 cores and journal.)
	m, err := p.fetchManifestLocked(ctx, u, repo, upRepo, ref, tag)
	p.finish(key, f, err)
	return m, err
}

// cachedAfterJoin returns ref from the store when it is there and, for a
// tag, still inside its TTL; nil when the upstream must be asked.
func (p *Proxy) cachedAfterJoin(ctx context.Context, u *upstream, repo, ref, tag string) *storage.Manifest {
	if tag == "" {
		m, err := p.store.GetManifest(ctx, repo, digest.Digest(ref))
		if err != nil {
			return nil
		}
		return m
	}
	age, err := p.store.TagAge(ctx, repo, tag)
	if err != nil || !p.fresh(u, age) {
		return nil
	}
	m, err := p.local(ctx, repo, tag)
	if err != nil {
		return nil
	}
	return m
}

// fetchManifestLocked fetches ref from upstream and stores it (as tag,
// when set) before returning.
func (p *Proxy) fetchManifestLocked(ctx context.Context, u *upstream, repo, upRepo, ref, tag string) (*storage.Manifest, error) {
	m, parsed, err := p.fetchUpstreamManifest(ctx, u, upRepo, ref)
	if err != nil {
		return nil, err
	}
	if err := p.storeManifest(ctx, u, repo, ref, tag, m, parsed); err != nil {
		return nil, err
	}
	return m, nil
}

// fetchUpstreamManifest fetches ref from upstream and checks it: a
// manifest kiln can store, whose digest is ref's when ref is a digest.
func (p *Proxy) fetchUpstreamManifest(ctx context.Context, u *upstream, upRepo, ref string) (*storage.Manifest, *storage.ParsedManifest, error) {
	fctx, cancel := u.withTimeout(context.WithoutCancel(ctx))
	defer cancel()
	resp, err := u.do(fctx, http.MethodGet, upRepo, "manifests/"+ref, http.Header{"Accept": {manifestAccept}})
	if err != nil {
		return nil, nil, upstreamError(u, ref, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20+1))
	if err != nil {
		derr := u.down(err)
		u.health.down(derr)
		return nil, nil, upstreamError(u, ref, derr)
	}
	if len(body) > 4<<20 {
		return nil, nil, distspec.ManifestInvalid.WithStatus(http.StatusBadGateway).WithMessage("upstream manifest larger than 4 MiB")
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	parsed, err := storage.ParseManifest(ct, body)
	if err != nil {
		return nil, nil, distspec.ManifestInvalid.WithStatus(http.StatusBadGateway).WithMessage("upstream " + u.cfg.Name + " sent a manifest kiln cannot store: " + err.Error())
	}
	alg := digest.SHA256
	if want, err := digest.Parse(ref); err == nil {
		alg = want.Algorithm()
	}
	d := alg.FromBytes(body)
	if want, err := digest.Parse(ref); err == nil && want != d {
		p.mismatches.Add(1)
		return nil, nil, distspec.DigestInvalid.WithStatus(http.StatusBadGateway).WithMessage(fmt.Sprintf("upstream %s sent %s for %s", u.cfg.Name, d, want))
	}
	return &storage.Manifest{Digest: d, MediaType: parsed.MediaType, Content: body}, parsed, nil
}

// storeManifest stores m, fetched from upstream for ref, in repo (as tag,
// when set).
func (p *Proxy) storeManifest(ctx context.Context, u *upstream, repo, ref, tag string, m *storage.Manifest, parsed *storage.ParsedManifest) error {
	err := p.store.MarkProxied(ctx, repo)
	if err == nil {
		var tags []string
		if tag != "" {
			tags = append(tags, tag)
		}
		err = p.store.PutManifest(ctx, repo, *m, parsed, tags...)
	}
	if err == nil && tag != "" {
		// PutManifest leaves an unchanged tag alone; its age must restart.
		err = p.store.RefreshTag(ctx, repo, tag)
	}
	if err != nil {
		p.log.WarnContext(ctx, "upstream manifest not cached", "upstream", u.cfg.Name, "repo", repo, "ref", ref, "err", err)
		return err
	}
	p.log.InfoContext(ctx, "cached from upstream", "upstream", u.cfg.Name, "repo", repo, "ref", ref, "digest", m.Digest)
	p.filled(ctx, u, repo, tag, m)
	return nil
}

// upstreamError turns an upstream failure for content never cached into
// the API error a client sees.
func upstreamError(u *upstream, ref string, err error) error {
	if errors.Is(err, errNotFound) {
		return distspec.ManifestUnknown.WithMessage("not found in upstream " + u.cfg.Name + ": " + ref)
	}
	if isDown(err) {
		return distspec.Internal.WithStatus(http.StatusBadGateway).WithMessage(err.Error() + "; " + ref + " is not cached")
	}
	return distspec.Internal.WithStatus(http.StatusBadGateway).WithMessage(err.Error())
}
