package storage

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
)

// BlobSize returns the size of blob d as repository repo sees it:
// ErrBlobUnknown when the repository holds no link to it.
func (s *Store) BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	linked, err := s.exists(ctx, layerLinkPath(repo, d))
	if err != nil {
		return 0, err
	}
	if !linked {
		return 0, ErrBlobUnknown
	}
	return s.blobSize(ctx, d)
}

// blobSize returns the size of the stored blob d, ErrBlobUnknown if absent.
func (s *Store) blobSize(ctx context.Context, d digest.Digest) (int64, error) {
	if s.localRoot != "" {
		fi, err := os.Stat(s.localPath(blobPath(d)))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return 0, ErrBlobUnknown
			}
			return 0, err
		}
		return fi.Size(), nil
	}
	fi, err := s.driver.Stat(ctx, blobPath(d))
	if err != nil {
		if isNotFound(err) {
			return 0, ErrBlobUnknown
		}
		return 0, err
	}
	return fi.Size(), nil
}

// HasBlob reports whether the store holds blob d in any repository.
func (s *Store) HasBlob(ctx context.Context, d digest.Digest) (bool, error) {
	return s.exists(ctx, blobPath(d))
}

// OpenBlob opens blob d for reading from offset. On the filesystem store the
// reader is an *os.File, which lets net/http send it with sendfile.
func (s *Store) OpenBlob(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	if s.localRoot != "" {
		f, err := os.Open(s.localPath(blobPath(d)))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, ErrBlobUnknown
			}
			return nil, err
		}
		if offset > 0 {
			if _, err := f.Seek(offset, io.SeekStart); err != nil {
				f.Close()
				return nil, err
			}
		}
		return f, nil
	}
	r, err := s.driver.Reader(ctx, blobPath(d), offset)
	if err != nil {
		if isNotFound(err) {
			return nil, ErrBlobUnknown
		}
		return nil, err
	}
	return r, nil
}

// LinkBlob lets repository repo read blob d, which must already be stored.
func (s *Store) LinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	ok, err := s.HasBlob(ctx, d)
	if err != nil {
		return err
	}
	if !ok {
		return ErrBlobUnknown
	}
	return s.driver.PutContent(ctx, layerLinkPath(repo, d), []byte(d))
}

// UnlinkBlob removes repository repo's link to blob d. The bytes stay until
// garbage collection finds nothing else refers to them.
func (s *Store) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	linked, err := s.exists(ctx, layerLinkPath(repo, d))
	if err != nil {
		return err
	}
	if !linked {
		return ErrBlobUnknown
	}
	return s.driver.Delete(ctx, layerLinkPath(repo, d))
}

// putBlob stores small content (a manifest) under its digest, once.
func (s *Store) putBlob(ctx context.Context, d digest.Digest, content []byte) error {
	ok, err := s.HasBlob(ctx, d)
	if err != nil || ok {
		return err
	}
	return s.driver.PutContent(ctx, blobPath(d), content)
}

// getBlob reads small content (a manifest) stored under d.
func (s *Store) getBlob(ctx context.Context, d digest.Digest) ([]byte, error) {
	if s.localRoot != "" {
		b, err := os.ReadFile(s.localPath(blobPath(d)))
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrBlobUnknown
		}
		return b, err
	}
	b, err := s.driver.GetContent(ctx, blobPath(d))
	if isNotFound(err) {
		return nil, ErrBlobUnknown
	}
	return b, err
}
