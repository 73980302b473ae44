package storage

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"fmt"
	"hash"
	"time"

	"github.com/google/uuid"
)

func (s *Store) loadUploadState(ctx context.Context, repo, id string) (*uploadState, error) {
	if err := uuid.Validate(id); err != nil {
		return nil, ErrUploadUnknown
	}
	b, err := s.driver.GetContent(ctx, uploadStatePath(id))
	if err != nil {
		if isNotFound(err) {
			return nil, ErrUploadUnknown
		}
		return nil, err
	}
	var st uploadState
	if err := json.Unmarshal(b, &st); err != nil {
		// Chunks' states are not fsynced (saveChunkState): a power loss
		// can leave one cut or empty. The client starts again.
		return nil, ErrUploadUnknown
	}
	if st.Repo != repo || time.Since(st.UpdatedAt) > s.uploadExpiry {
		return nil, ErrUploadUnknown
	}
	if st.Boot != "" {
		if err := s.recoverUpload(ctx, id, &st); err != nil {
			return nil, err
		}
		return &st, nil
	}
	// Durability: a session whose data holds fewer bytes than it
	// acknowledged cannot be continued. This is what a crash leaves between
	// FinishUpload moving the data into the blob store and removing the
	// session; appending to it would write zeros up to the old size under
	// a hash state that claims the real bytes.
	if st.Size > 0 && s.files.shortOf(ctx, uploadDataPath(id), st.Size) {
		return nil, ErrUploadUnknown
	}
	return &st, nil
}

func (s *Store) saveUploadState(ctx context.Context, id string, st *uploadState) error {
	st.UpdatedAt = time.Now().UTC()
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return s.putContent(ctx, uploadStatePath(id), b)
}

// saveChunkState saves the state after an intermediate chunk. Where the
// chunk's data was not fsynced, neither is the state (see recoverUpload).
func (s *Store) saveChunkState(ctx context.Context, id string, st *uploadState) error {
	if s.files.syncsChunks() {
		return s.saveUploadState(ctx, id, st)
	}
	st.Boot = s.boot
	st.UpdatedAt = time.Now().UTC()
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return s.files.replace(ctx, uploadStatePath(id), b)
}

func saveHash(st *uploadState, h hash.Hash) error {
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	st.HashState = b
	return nil
}

func restoreHash(st *uploadState) (hash.Hash, error) {
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.HashState); err != nil {
		return nil, fmt.Errorf("corrupt hash state: %w", err)
	}
	return h, nil
}

// restoreHashFrom returns a copy of h to hash into, so h itself only moves
// on when a chunk was stored whole.
func restoreHashFrom(h hash.Hash) (hash.Hash, error) {
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	c := sha256.New()
	return c, c.(encoding.BinaryUnmarshaler).UnmarshalBinary(b)
}

func copyHashState(dst, src hash.Hash) {
	b, _ := src.(encoding.BinaryMarshaler).MarshalBinary()
	dst.(encoding.BinaryUnmarshaler).UnmarshalBinary(b)
}
