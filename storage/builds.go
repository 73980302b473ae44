package storage

import (
	"context"
	"errors"
	"io"
	"path"
	"strings"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// ErrBuildUnknown is returned for a build the store holds nothing of.
var ErrBuildUnknown = errors.New("build unknown")

// The store keeps what buildhook writes about builds (a JSON record and a
// log per build) without reading it: the content is the caller's. Build
// ids are single path components chosen by the caller.

// validBuildID keeps an id inside its own /builds/<id> directory.
func validBuildID(id string) bool {
	return id != "" && !strings.ContainsAny(id, "/\\") && !strings.HasPrefix(id, ".")
}

// PutBuildRecord writes the record of build id, durably.
func (s *Store) PutBuildRecord(ctx context.Context, id string, record []byte) error {
	if !validBuildID(id) {
		return ErrBuildUnknown
	}
	return s.files.write(ctx, buildRecordPath(id), record)
}

// NoteBuildRecord writes the record of a running build without waiting
// for the disk: a temporary file renamed over the last one, no fsync. A
// crash of the machine may lose the latest note, never leave half a
// record; the record that ends a build goes through PutBuildRecord.
func (s *Store) NoteBuildRecord(ctx context.Context, id string, record []byte) error {
	if !validBuildID(id) {
		return ErrBuildUnknown
	}
	return s.files.replace(ctx, buildRecordPath(id), record)
}

// SyncBuildRecord makes the record NoteBuildRecord last wrote for build id
// durable, with the build's directory: the record of a build just queued
// is written at once and made durable while the build starts.
func (s *Store) SyncBuildRecord(ctx context.Context, id string) error {
	if !validBuildID(id) {
		return ErrBuildUnknown
	}
	err := s.files.sync(ctx, buildRecordPath(id))
	if isNotFound(err) {
		return ErrBuildUnknown
	}
	return err
}

// BuildRecord reads the record of build id; ErrBuildUnknown when there is none.
func (s *Store) BuildRecord(ctx context.Context, id string) ([]byte, error) {
	return s.buildFile(ctx, id, buildRecordPath)
}

// PutBuildLog writes the whole log of build id so far, replacing the last
// copy at once: a follower reading from an offset never sees it cut short.
func (s *Store) PutBuildLog(ctx context.Context, id string, log []byte) error {
	if !validBuildID(id) {
		return ErrBuildUnknown
	}
	return s.files.replace(ctx, buildLogPath(id), log)
}

// FinishBuildLog writes the whole log of build id as it ended, as
// PutBuildLog does (a follower may be reading the last copy), and makes it
// durable: its record, written durably next, says it ended.
func (s *Store) FinishBuildLog(ctx context.Context, id string, log []byte) error {
	if err := s.PutBuildLog(ctx, id, log); err != nil {
		return err
	}
	return s.files.sync(ctx, buildLogPath(id))
}

// BuildLog reads the stored log of build id; ErrBuildUnknown when there is
// none (the build may still be queued: see BuildRecord).
func (s *Store) BuildLog(ctx context.Context, id string) ([]byte, error) {
	return s.buildFile(ctx, id, buildLogPath)
}

// BuildLogFrom reads the stored log of build id from offset on: a log
// only grows (each copy extends the last), so a follower reads what is
// new. Nothing when offset is at or past its end; ErrBuildUnknown when
// there is no log.
func (s *Store) BuildLogFrom(ctx context.Context, id string, offset int64) ([]byte, error) {
	if !validBuildID(id) {
		return nil, ErrBuildUnknown
	}
	r, err := s.files.open(ctx, buildLogPath(id), offset)
	switch {
	case isNotFound(err):
		return nil, ErrBuildUnknown
	case errors.As(err, new(storagedriver.InvalidOffsetError)):
		return nil, nil
	case err != nil:
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func (s *Store) buildFile(ctx context.Context, id string, at func(string) string) ([]byte, error) {
	if !validBuildID(id) {
		return nil, ErrBuildUnknown
	}
	b, err := s.driver.GetContent(ctx, at(id))
	if isNotFound(err) {
		return nil, ErrBuildUnknown
	}
	return b, err
}

// BuildIDs returns the id of every build the store holds something of, in
// no particular order.
func (s *Store) BuildIDs(ctx context.Context) ([]string, error) {
	entries, err := s.driver.List(ctx, buildsRoot)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, path.Base(e))
	}
	return ids, nil
}
