package storage

import (
	"context"
	"io"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
)

// PutHashedBlob is PutBlob for a caller that hashes r's bytes itself as it
// hands them over (the pull-through cache verifies what it relays to its
// client): the filesystem store then writes them without hashing each byte
// a second time. sum, called once r ended, returns the digest of every
// byte r gave; the blob is stored only if that is d. Other stores hash as
// PutBlob does.
func (s *Store) PutHashedBlob(ctx context.Context, repo string, d digest.Digest, r io.Reader, sum func() digest.Digest) (int64, error) {
	fs, ok := s.files.(fsFiles)
	if !ok {
		return s.PutBlob(ctx, repo, d, r)
	}
	if err := checkAlgorithm(d); err != nil {
		return 0, err
	}
	id := uuid.NewString()
	stored := false
	defer func() { s.deleteSession(context.WithoutCancel(ctx), id, !stored) }()
	n, err := fs.appendAt(ctx, uploadDataPath(id), 0, nil, r, true)
	if err != nil {
		return 0, err
	}
	if sum() != d {
		return 0, ErrDigestMismatch
	}
	if err := s.placeBlob(ctx, id, repo, d); err != nil {
		return 0, err
	}
	stored = true
	return n, nil
}
