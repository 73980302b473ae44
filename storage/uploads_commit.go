package storage

import (
	"context"

	"github.com/opencontainers/go-digest"
)

// commitData verifies the session's content against d and moves it to the
// blob store, then links it into the repository.
func (s *Store) commitData(ctx context.Context, id string, st *uploadState, d digest.Digest) error {
	var got digest.Digest
	if d.Algorithm() == digest.SHA256 {
		h, err := restoreHash(st)
		if err != nil {
			return err
		}
		got = digest.NewDigest(digest.SHA256, h)
	} else {
		// Only SHA-256 is hashed while streaming; others are rare enough
		// to afford reading the data again.
		rc, err := s.driver.Reader(ctx, uploadDataPath(id), 0)
		if err != nil {
			return err
		}
		got, err = d.Algorithm().FromReader(rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	if got != d {
		return ErrDigestMismatch
	}
	return s.placeBlob(ctx, id, st.Repo, d)
}

// placeBlob moves session id's verified content to the blob store as d,
// unless it is there already, and links it into repo.
func (s *Store) placeBlob(ctx context.Context, id, repo string, d digest.Digest) error {
	has, err := s.HasBlob(ctx, d)
	if err != nil {
		return err
	}
	if !has {
		if err := s.moveIntoPlace(ctx, uploadDataPath(id), blobPath(d)); err != nil {
			return err
		}
	}
	return s.putContent(ctx, layerLinkPath(repo, d), []byte(d))
}

// moveIntoPlace renames a verified file to its final path, durably.
func (s *Store) moveIntoPlace(ctx context.Context, from, to string) error {
	return s.files.move(ctx, from, to)
}

// putContent stores the small file at p durably and atomically (see
// backend.write): on the filesystem store under a temporary name of kiln's
// own (see tempname.go; the driver's names could be a tag's).
func (s *Store) putContent(ctx context.Context, p string, content []byte) error {
	return s.files.write(ctx, p, content)
}

// deleteContent removes p and, on the filesystem store, fsyncs the
// directory that held it, so an acknowledged delete survives a power loss.
func (s *Store) deleteContent(ctx context.Context, p string) error {
	return s.files.removeAll(ctx, p)
}
