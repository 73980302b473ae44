package storage

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"path"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
)

// Upload describes an open upload session.
type Upload struct {
	ID        string
	Repo      string
	Size      int64 // bytes received and acknowledged so far
	StartedAt time.Time
}

// uploadState is the session's record in the store: everything another
// process needs to continue the upload, including the running SHA-256.
type uploadState struct {
	Repo      string    `json:"repo"`
	Size      int64     `json:"size"`
	HashState []byte    `json:"hashState"`
	StartedAt time.Time `json:"startedAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Boot, set where chunks are not fsynced (see backend.syncsChunks),
	// is the boot of the system that wrote the data: after another boot
	// the data may have lost any part of them (see recoverUpload).
	Boot string `json:"boot,omitempty"`
	// Marks are earlier chunk ends, oldest first, that a crash can cut the
	// session back to.
	Marks []uploadMark `json:"marks,omitempty"`
}

// uploadMark is the session's size and hash state at the end of a chunk.
type uploadMark struct {
	Size      int64  `json:"size"`
	HashState []byte `json:"hashState"`
}

// NewUpload opens an upload session for repo.
func (s *Store) NewUpload(ctx context.Context, repo string) (*Upload, error) {
	now := time.Now().UTC()
	st := &uploadState{Repo: repo, StartedAt: now, UpdatedAt: now}
	h := sha256.New()
	if err := saveHash(st, h); err != nil {
		return nil, err
	}
	id := uuid.NewString()
	if err := s.saveUploadState(ctx, id, st); err != nil {
		return nil, err
	}
	return st.upload(id), nil
}

func (st *uploadState) upload(id string) *Upload {
	return &Upload{ID: id, Repo: st.Repo, Size: st.Size, StartedAt: st.StartedAt}
}

// GetUpload returns the session id of repo, ErrUploadUnknown when there is
// none (or it expired, or it belongs to another repository).
func (s *Store) GetUpload(ctx context.Context, repo, id string) (*Upload, error) {
	st, err := s.loadUploadState(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	return st.upload(id), nil
}

// AppendUpload streams r to the end of session id. When offset is not
// negative it must equal the session's size, else ErrUploadOutOfOrder is
// returned with the current session. On any error the session keeps what it
// had before the call.
func (s *Store) AppendUpload(ctx context.Context, repo, id string, offset int64, r io.Reader) (*Upload, error) {
	unlock := s.lockUpload(id)
	defer unlock()
	st, err := s.loadUploadState(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	if offset >= 0 && offset != st.Size {
		return st.upload(id), ErrUploadOutOfOrder
	}
	if !s.files.syncsChunks() {
		st.mark()
	}
	if err := s.appendData(ctx, id, st, r, false); err != nil {
		return st.upload(id), err
	}
	if err := s.saveChunkState(ctx, id, st); err != nil {
		return nil, err
	}
	return st.upload(id), nil
}

// FinishUpload appends r (the optional last chunk; may be nil), checks that
// the whole content has digest d, and moves it into the store under d,
// linked into repo. On a mismatch the session is removed and
// ErrDigestMismatch returned.
func (s *Store) FinishUpload(ctx context.Context, repo, id string, offset int64, r io.Reader, d digest.Digest) (*Upload, error) {
	if err := checkAlgorithm(d); err != nil {
		return nil, err
	}
	unlock := s.lockUpload(id)
	defer unlock()
	st, err := s.loadUploadState(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	if offset >= 0 && offset != st.Size {
		return st.upload(id), ErrUploadOutOfOrder
	}
	if r == nil {
		r = eofReader{}
	}
	if err := s.appendData(ctx, id, st, r, true); err != nil {
		return st.upload(id), err
	}
	if err := s.commitData(ctx, id, st, d); err != nil {
		if errors.Is(err, ErrDigestMismatch) {
			s.deleteSession(ctx, id, false)
		}
		return nil, err
	}
	return st.upload(id), s.deleteSession(ctx, id, false)
}

// PutBlob stores the whole content of r as blob d in repo (a monolithic
// upload), verifying the digest before anything becomes visible.
func (s *Store) PutBlob(ctx context.Context, repo string, d digest.Digest, r io.Reader) (int64, error) {
	if err := checkAlgorithm(d); err != nil {
		return 0, err
	}
	content, rest, err := readSmall(r)
	if err != nil {
		return 0, err
	}
	if rest == nil {
		if err := s.putSmallBlob(ctx, repo, d, content); err != nil {
			return 0, err
		}
		return int64(len(content)), nil
	}
	r = rest
	id := uuid.NewString()
	now := time.Now().UTC()
	st := &uploadState{Repo: repo, StartedAt: now, UpdatedAt: now}
	stored := false
	defer func() { s.deleteSession(context.WithoutCancel(ctx), id, !stored) }()
	if err := saveHash(st, sha256.New()); err != nil {
		return 0, err
	}
	if err := s.appendData(ctx, id, st, r, true); err != nil {
		return 0, err
	}
	if err := s.commitData(ctx, id, st, d); err != nil {
		return 0, err
	}
	stored = true
	return st.Size, nil
}

// CancelUpload removes session id and what it received.
func (s *Store) CancelUpload(ctx context.Context, repo, id string) error {
	unlock := s.lockUpload(id)
	defer unlock()
	if _, err := s.loadUploadState(ctx, repo, id); err != nil {
		return err
	}
	return s.deleteSession(ctx, id, true)
}

// PurgeUploads removes sessions idle for longer than the store's expiry and
// returns how many it removed.
func (s *Store) PurgeUploads(ctx context.Context) (int, error) {
	entries, err := s.driver.List(ctx, uploadsRoot)
	if err != nil {
		if isNotFound(err) {
			return 0, nil
		}
		return 0, err
	}
	cutoff := time.Now().Add(-s.uploadExpiry)
	purged := 0
	for _, dir := range entries {
		id := path.Base(dir)
		if s.uploadActive(ctx, id, cutoff) {
			continue
		}
		if err := s.deleteSession(ctx, id, true); err == nil {
			purged++
		}
	}
	return purged, nil
}

func (s *Store) uploadActive(ctx context.Context, id string, cutoff time.Time) bool {
	b, err := s.driver.GetContent(ctx, uploadStatePath(id))
	if err == nil {
		var st uploadState
		if json.Unmarshal(b, &st) == nil {
			return st.UpdatedAt.After(cutoff)
		}
		return false
	}
	// A monolithic upload has data but no state; its age is the data's.
	fi, err := s.driver.Stat(ctx, uploadDataPath(id))
	return err == nil && fi.ModTime().After(cutoff)
}

func (s *Store) lockUpload(id string) func() {
	m, _ := s.uploadLocks.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

func checkAlgorithm(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return err
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return nil
	}
	return ErrUnsupportedAlgo
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
