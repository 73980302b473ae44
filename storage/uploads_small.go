package storage

import (
	"bytes"
	"context"
	"io"

	"github.com/opencontainers/go-digest"
)

// smallBlobMax is the largest monolithic upload PutBlob holds in memory
// and stores as a small file (a config, a small layer a builder made).
const smallBlobMax = 1 << 20

// readSmall reads r whole when it holds at most smallBlobMax bytes. For a
// larger body it returns a nil slice and a reader of r from its start.
func readSmall(r io.Reader) ([]byte, io.Reader, error) {
	head, err := io.ReadAll(io.LimitReader(r, smallBlobMax+1))
	if err != nil {
		return nil, nil, err
	}
	if len(head) <= smallBlobMax {
		return head, nil, nil
	}
	return nil, io.MultiReader(bytes.NewReader(head), r), nil
}

// putSmallBlob stores content as blob d, unless the store has it, and
// links it into repo. The blob and the link are written together, the
// link published after the blob (backend.writeInOrder): two disk sync
// rounds, where an upload's data, its move into place and the link take
// four one after another.
func (s *Store) putSmallBlob(ctx context.Context, repo string, d digest.Digest, content []byte) error {
	if d.Algorithm().FromBytes(content) != d {
		return ErrDigestMismatch
	}
	has, err := s.HasBlob(ctx, d)
	if err != nil {
		return err
	}
	var groups [][]smallFile
	if !has {
		groups = append(groups, []smallFile{{path: blobPath(d), content: content}})
	}
	groups = append(groups, []smallFile{{path: layerLinkPath(repo, d), content: []byte(d)}})
	return s.files.writeInOrder(ctx, groups...)
}
