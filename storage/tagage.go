package storage

import (
	"context"
	"path"
	"time"
)

// TagAge returns when tag was last written (created, moved or refreshed)
// in repo: the pull-through cache trusts a tag for a TTL after that.
func (s *Store) TagAge(ctx context.Context, repo, tag string) (time.Time, error) {
	p := tagPath(repo, tag)
	// The filesystem backend's stat would take any path; every backend
	// refuses what the distribution driver refuses.
	if !validPath(p) {
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

// RefreshTag restarts tag's age: an upstream confirmed it still points
// where it did. On the filesystem only its modification time changes (the
// age is advice for the cache, not data: it needs no fsync, and the tag's
// content is never rewritten); elsewhere it is rewritten unchanged.
func (s *Store) RefreshTag(ctx context.Context, repo, tag string) error {
	d, err := s.ResolveTag(ctx, repo, tag)
	if err != nil {
		return err
	}
	return s.touch(ctx, tagPath(repo, tag), func() ([]byte, error) { return []byte(d), nil })
}

// MarkProxied records that repo holds content cached from an upstream, so
// the pull-through cache may revalidate its tags; pushed repositories are
// never marked. A repository marked already costs a stat.
func (s *Store) MarkProxied(ctx context.Context, repo string) error {
	p := proxiedPath(repo)
	if ok, err := s.exists(ctx, p); err != nil || ok {
		return err
	}
	return s.putContent(ctx, p, []byte("1"))
}

// IsProxied reports whether repo was filled by the pull-through cache, and
// whether it exists at all: holds manifests or blobs of its own (a
// repository nested under its name, as nginx/conf is under nginx, does not
// count).
func (s *Store) IsProxied(ctx context.Context, repo string) (proxied, exists bool, err error) {
	if proxied, err = s.exists(ctx, proxiedPath(repo)); err != nil || proxied {
		return proxied, proxied, err
	}
	for _, own := range []string{manifestsDir, layersDir} {
		if exists, err = s.exists(ctx, path.Join(repoPath(repo), own)); err != nil || exists {
			return false, exists, err
		}
	}
	return false, false, nil
}

// UnmarkProxied makes repo an ordinary repository again: its mirror copy
// was deleted, and a push may take the name.
func (s *Store) UnmarkProxied(ctx context.Context, repo string) error {
	err := s.deleteContent(ctx, proxiedPath(repo))
	if isNotFound(err) {
		return nil
	}
	return err
}
