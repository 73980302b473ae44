package storage

import (
	"context"
	"time"
)

// TagAge returns when tag was last written (created, moved or refreshed)
// in repo: the pull-through cache trusts a tag for a TTL after that.
func (s *Store) TagAge(ctx context.Context, repo, tag string) (time.Time, error) {
	p := tagPath(repo, tag)
	if s.localRoot != "" && !validPath(p) {
		return time.Time{}, errInvalidPath
	}
	mod, ok, err := s.modTime(ctx, p)
	if err != nil {
		return time.Time{}, err
	}
	if !ok {
		return time.Time{}, ErrTagUnknown
	}
	return mod, nil
}

// RefreshTag rewrites tag unchanged, so its age starts again: an upstream
// confirmed it still points where it did.
func (s *Store) RefreshTag(ctx context.Context, repo, tag string) error {
	d, err := s.ResolveTag(ctx, repo, tag)
	if err != nil {
		return err
	}
	return s.driver.PutContent(ctx, tagPath(repo, tag), []byte(d))
}

// MarkProxied records that repo holds content cached from an upstream, so
// the pull-through cache may revalidate its tags; pushed repositories are
// never marked.
func (s *Store) MarkProxied(ctx context.Context, repo string) error {
	return s.driver.PutContent(ctx, proxiedPath(repo), []byte("1"))
}

// IsProxied reports whether repo was filled by the pull-through cache, and
// whether it exists at all.
func (s *Store) IsProxied(ctx context.Context, repo string) (proxied, exists bool, err error) {
	if proxied, err = s.exists(ctx, proxiedPath(repo)); err != nil || proxied {
		return proxied, proxied, err
	}
	exists, err = s.exists(ctx, repoPath(repo))
	return false, exists, err
}

func proxiedPath(repo string) string { return repoPath(repo) + "/_proxied" }
