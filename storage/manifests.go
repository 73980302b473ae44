package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest is a stored manifest: its exact bytes, as pushed. Content may
// be shared with the store's manifest cache: callers must not modify it.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Content   []byte
}

// PutManifest stores m in repo (parsed is m's ParsedManifest), records it
// as a referrer of its subject, and points each of tags at it. Every tag
// whose digest changes is reported to Options.OnTagMoved. The store keeps
// m.Content: the caller must not modify it afterwards.
//
// Crash ordering: the manifest's bytes, then its referrer entry, then its
// link, then its tags; each step is visible only once the one before it
// is durable, so a link or tag never points to something missing, and a
// manifest visible by digest is always already listed under its subject.
// The backend decides how (backend.writeInOrder): a driver writes one file
// after the other, the filesystem store in fewer fsync rounds.
func (s *Store) PutManifest(ctx context.Context, repo string, m Manifest, parsed *ParsedManifest, tags ...string) error {
	has, err := s.HasBlob(ctx, m.Digest) // moves it back from the trash if a sweep just took it
	if err != nil {
		return err
	}
	moves, err := s.tagMoves(ctx, repo, m, tags)
	if err != nil {
		return err
	}
	// One array, cut into the groups that become visible in turn.
	files := make([]smallFile, 0, 3+len(moves))
	if !has {
		files = append(files, smallFile{blobPath(m.Digest), m.Content})
	}
	contentEnd := len(files)
	if parsed.Subject != nil {
		desc, err := json.Marshal(parsed.Descriptor(m.Digest, int64(len(m.Content))))
		if err != nil {
			return err
		}
		files = append(files, smallFile{referrerPath(repo, parsed.Subject.Digest, m.Digest), desc})
	}
	referrerEnd := len(files)
	files = append(files, smallFile{manifestLinkPath(repo, m.Digest), []byte(m.MediaType)})
	linkEnd := len(files)
	for _, mv := range moves {
		files = append(files, smallFile{tagPath(repo, mv.Tag), []byte(m.Digest)})
	}
	err = s.files.writeInOrder(ctx, files[:contentEnd], files[contentEnd:referrerEnd], files[referrerEnd:linkEnd], files[linkEnd:])
	if err != nil {
		return err
	}
	s.manifests.add(m.Digest, m.Content)
	if s.onTagMoved != nil {
		for _, mv := range moves {
			s.onTagMoved(mv)
		}
	}
	return nil
}

// tagMoves returns the moves that pointing tags at m makes (tags already
// there, and repeated tags, are left out).
func (s *Store) tagMoves(ctx context.Context, repo string, m Manifest, tags []string) ([]TagMove, error) {
	var moves []TagMove
next:
	for _, tag := range tags {
		for _, mv := range moves {
			if mv.Tag == tag {
				continue next
			}
		}
		previous, err := s.ResolveTag(ctx, repo, tag)
		if err != nil && !errors.Is(err, ErrTagUnknown) {
			return nil, err
		}
		if previous == m.Digest {
			continue
		}
		moves = append(moves, TagMove{Repo: repo, Tag: tag, From: previous, To: m.Digest, MediaType: m.MediaType})
	}
	return moves, nil
}

// TagMove reports that a tag now points to another manifest.
type TagMove struct {
	Repo, Tag string
	From      digest.Digest // "" when the tag is new
	To        digest.Digest
	MediaType string
}

// HasManifest reports whether repo holds manifest d.
func (s *Store) HasManifest(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	return s.exists(ctx, manifestLinkPath(repo, d))
}

// GetManifest returns manifest d of repo, ErrManifestUnknown if it has none.
//
// The link (whether repo holds d, and its media type) is read from the
// store every time; only the content, immutable under its digest, may come
// from the in-process cache.
func (s *Store) GetManifest(ctx context.Context, repo string, d digest.Digest) (*Manifest, error) {
	mt, err := s.getContent(ctx, manifestLinkPath(repo, d))
	if err != nil {
		if isNotFound(err) {
			return nil, ErrManifestUnknown
		}
		return nil, err
	}
	content, ok := s.manifests.get(d)
	if !ok {
		content, err = s.getBlob(ctx, d)
		if err != nil {
			if errors.Is(err, ErrBlobUnknown) {
				return nil, ErrManifestUnknown
			}
			return nil, err
		}
		// Manifests are small enough to check on every read from the
		// store: corrupt bytes must not reach a client as a manifest.
		if d.Algorithm().Available() && d.Algorithm().FromBytes(content) != d {
			return nil, fmt.Errorf("manifest %s: %w", d, ErrCorrupt)
		}
		s.manifests.add(d, content)
	}
	return &Manifest{Digest: d, MediaType: string(mt), Content: content}, nil
}

// ResolveTag returns the digest tag points to in repo.
func (s *Store) ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	b, err := s.getContent(ctx, tagPath(repo, tag))
	if err != nil {
		if isNotFound(err) {
			return "", ErrTagUnknown
		}
		return "", err
	}
	return digest.Parse(string(b))
}

// DeleteTag removes tag from repo; the manifest stays.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	if _, err := s.ResolveTag(ctx, repo, tag); err != nil {
		return err
	}
	return s.deleteContent(ctx, tagPath(repo, tag))
}

// DeleteManifest removes manifest d from repo, with every tag pointing to it
// and its entry in its subject's referrers.
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	m, err := s.GetManifest(ctx, repo, d)
	if err != nil {
		return err
	}
	tags, err := s.Tags(ctx, repo)
	if err != nil && !errors.Is(err, ErrNameUnknown) {
		return err
	}
	for _, t := range tags {
		if td, err := s.ResolveTag(ctx, repo, t); err == nil && td == d {
			if err := s.deleteContent(ctx, tagPath(repo, t)); err != nil && !isNotFound(err) {
				return err
			}
		}
	}
	if err := s.deleteContent(ctx, manifestLinkPath(repo, d)); err != nil && !isNotFound(err) {
		return err
	}
	if parsed, err := ParseManifest(m.MediaType, m.Content); err == nil && parsed.Subject != nil {
		if err := s.deleteContent(ctx, referrerPath(repo, parsed.Subject.Digest, d)); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// Tags returns repo's tags in lexical order; ErrNameUnknown if repo does not exist.
func (s *Store) Tags(ctx context.Context, repo string) ([]string, error) {
	entries, err := s.listNames(ctx, tagsPath(repo))
	if err != nil {
		if !isNotFound(err) {
			return nil, err
		}
		if ok, err := s.exists(ctx, repoPath(repo)); err != nil || !ok {
			if err == nil {
				err = ErrNameUnknown
			}
			return nil, err
		}
		return []string{}, nil
	}
	tags := entries[:0]
	for _, e := range entries {
		if isOwnTempName(e) {
			continue // a write interrupted by a crash
		}
		tags = append(tags, e)
	}
	sort.Strings(tags)
	return tags, nil
}

// Referrers returns the descriptors of repo's manifests whose subject is d,
// ordered by digest. An unknown subject has no referrers, not an error.
func (s *Store) Referrers(ctx context.Context, repo string, d digest.Digest) ([]v1.Descriptor, error) {
	entries, err := s.driver.List(ctx, referrersPath(repo, d))
	if err != nil {
		if isNotFound(err) {
			return []v1.Descriptor{}, nil
		}
		return nil, err
	}
	sort.Strings(entries)
	out := make([]v1.Descriptor, 0, len(entries))
	for _, e := range entries {
		if isTempName(path.Base(e)) {
			continue // a PutContent interrupted by a crash
		}
		b, err := s.driver.GetContent(ctx, e)
		if err != nil {
			if isNotFound(err) {
				continue // deleted meanwhile
			}
			return nil, err
		}
		var desc v1.Descriptor
		if err := json.Unmarshal(b, &desc); err != nil || desc.Digest.Validate() != nil {
			continue
		}
		// The entry is written before the manifest's link, and removed
		// after it: a crash in between leaves an entry for a manifest the
		// repository does not hold, which must not be listed.
		if held, err := s.HasManifest(ctx, repo, desc.Digest); err != nil {
			return nil, err
		} else if !held {
			continue
		}
		out = append(out, desc)
	}
	return out, nil
}
