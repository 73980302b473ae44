package storage

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// BlobSize returns the size of blob d as repository repo sees it:
// ErrBlobUnknown when the repository holds no link to it.
//
// It also refreshes a link older than linkRefreshAge (see TouchBlobLink):
// a client that finds a blob with HEAD skips its upload and references it
// in the manifest it PUTs next, so the blob must outlive a collection that
// starts in between.
func (s *Store) BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	p := layerLinkPath(repo, d)
	mod, linked, err := s.modTime(ctx, p)
	if err != nil {
		return 0, err
	}
	if !linked {
		return 0, ErrBlobUnknown
	}
	if time.Since(mod) > s.linkRefreshAge() {
		// Best effort: a read must not fail for it (a manifest PUT touches
		// again, and does fail when it cannot).
		s.touch(ctx, p, func() ([]byte, error) { return []byte(d), nil })
	}
	return s.blobSize(ctx, d)
}

// modTime returns the modification time of the file at p, and whether it exists.
func (s *Store) modTime(ctx context.Context, p string) (time.Time, bool, error) {
	_, mod, err := s.files.stat(ctx, p)
	if err != nil {
		if isNotFound(err) {
			return time.Time{}, false, nil
		}
		return time.Time{}, false, err
	}
	return mod, true, nil
}

// blobSize returns the size of the stored blob d, ErrBlobUnknown if absent.
// A blob a sweep of the garbage collector has just put in its trash is
// moved back first (see restoreBlob).
func (s *Store) blobSize(ctx context.Context, d digest.Digest) (int64, error) {
	size, err := s.statBlob(ctx, d)
	if errors.Is(err, ErrBlobUnknown) {
		if ok, rerr := s.restoreBlob(ctx, d); rerr != nil || !ok {
			return 0, cmpErr(rerr, err)
		}
		size, err = s.statBlob(ctx, d)
	}
	return size, err
}

func (s *Store) statBlob(ctx context.Context, d digest.Digest) (int64, error) {
	size, _, err := s.files.stat(ctx, blobPath(d))
	if err != nil {
		if isNotFound(err) {
			return 0, ErrBlobUnknown
		}
		return 0, err
	}
	return size, nil
}

// HasBlob reports whether the store holds blob d in any repository.
func (s *Store) HasBlob(ctx context.Context, d digest.Digest) (bool, error) {
	ok, err := s.exists(ctx, blobPath(d))
	if err != nil || ok {
		return ok, err
	}
	return s.restoreBlob(ctx, d)
}

// OpenBlob opens blob d for reading from offset. On the filesystem store the
// reader is an *os.File, which lets net/http send it with sendfile.
func (s *Store) OpenBlob(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	rc, err := s.openBlob(ctx, d, offset)
	if errors.Is(err, ErrBlobUnknown) {
		if ok, rerr := s.restoreBlob(ctx, d); rerr != nil || !ok {
			return nil, cmpErr(rerr, err)
		}
		rc, err = s.openBlob(ctx, d, offset)
	}
	return rc, err
}

func (s *Store) openBlob(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	r, err := s.files.open(ctx, blobPath(d), offset)
	if err != nil {
		if isNotFound(err) {
			return nil, ErrBlobUnknown
		}
		return nil, err
	}
	return r, nil
}

// LinkBlob lets repository repo read blob d, which must already be stored
// (a mount): durably, as it is acknowledged. A link repo has already is
// only touched, which restarts its garbage-collection grace.
func (s *Store) LinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	ok, err := s.HasBlob(ctx, d)
	if err != nil {
		return err
	}
	if !ok {
		return ErrBlobUnknown
	}
	p := layerLinkPath(repo, d)
	linked, err := s.exists(ctx, p)
	switch {
	case err != nil:
		return err
	case linked:
		return s.touch(ctx, p, func() ([]byte, error) { return []byte(d), nil })
	}
	return s.files.write(ctx, p, []byte(d))
}

// UnlinkBlob removes repository repo's link to blob d, durably. The bytes
// stay until garbage collection finds nothing else refers to them.
func (s *Store) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	linked, err := s.exists(ctx, layerLinkPath(repo, d))
	if err != nil {
		return err
	}
	if !linked {
		return ErrBlobUnknown
	}
	return s.deleteContent(ctx, layerLinkPath(repo, d))
}

// getBlob reads small content (a manifest) stored under d.
func (s *Store) getBlob(ctx context.Context, d digest.Digest) ([]byte, error) {
	b, err := s.readBlob(ctx, d)
	if errors.Is(err, ErrBlobUnknown) {
		if ok, rerr := s.restoreBlob(ctx, d); rerr != nil || !ok {
			return nil, cmpErr(rerr, err)
		}
		b, err = s.readBlob(ctx, d)
	}
	return b, err
}

func (s *Store) readBlob(ctx context.Context, d digest.Digest) ([]byte, error) {
	b, err := s.files.readAll(ctx, blobPath(d))
	if isNotFound(err) {
		return nil, ErrBlobUnknown
	}
	return b, err
}

// restoreBlob moves blob d back from the garbage collector's trash, where a
// sweep puts a blob before it checks one last time that nobody claimed it
// (see GC). Every read that misses a blob comes here, so a reader racing the
// sweep never sees a blob missing that the sweep may still give back; a
// manifest PUT that gets its blob this way has already refreshed its link,
// so the next collection keeps it. It reports whether d is in place now.
func (s *Store) restoreBlob(ctx context.Context, d digest.Digest) (bool, error) {
	err := s.moveIntoPlace(ctx, trashBlobPath(d), blobPath(d))
	if err == nil {
		return true, nil
	}
	if !isNotFound(err) {
		return false, err
	}
	// Not in the trash: another reader may have just moved it back.
	return s.exists(ctx, blobPath(d))
}

// cmpErr returns err when it is set, else fallback.
func cmpErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

// TouchBlobLink refreshes repository repo's link to blob d: its modification
// time becomes now. A manifest PUT touches the link of every blob it
// references before it checks that they exist, so a garbage collection that
// has not swept them yet sees a link younger than its grace period and
// keeps them (or moves them back from its trash). It does nothing when repo
// has no link to d: the existence check then fails as it should; touching
// never gives a repository access to a blob.
func (s *Store) TouchBlobLink(ctx context.Context, repo string, d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return nil // the caller's existence check reports it
	}
	return s.touch(ctx, layerLinkPath(repo, d), func() ([]byte, error) { return []byte(d), nil })
}

// TouchManifestLink refreshes repository repo's link to manifest d, as
// TouchBlobLink does for blobs: an index PUT touches its children, so that
// a collection deleting untagged manifests keeps them.
func (s *Store) TouchManifestLink(ctx context.Context, repo string, d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return nil
	}
	p := manifestLinkPath(repo, d)
	return s.touch(ctx, p, func() ([]byte, error) { return s.driver.GetContent(ctx, p) })
}

// touch sets the modification time of the file at p to now, if it exists:
// on the filesystem with a utimes call, elsewhere by rewriting the content
// content returns (see backend.touch).
func (s *Store) touch(ctx context.Context, p string, content func() ([]byte, error)) error {
	return s.files.touch(ctx, p, content)
}
