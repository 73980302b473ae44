package buildhook

import (
	"context"
	"encoding/json"
	"log/slog"
)

// syncer is a recordStore that can write a record without waiting for the
// disk and make it durable later (Store.NoteBuildRecord, SyncBuildRecord).
type syncer interface {
	noter
	SyncBuildRecord(ctx context.Context, id string) error
}

// SaveQueued writes r, the record of a build just queued, at once, and
// makes it durable in the background, where the store can: the build may
// start meanwhile. The trigger was answered before its record was written
// in either case, so a crash loses no more than it would; but every build
// of a tag move waited for its record's two disk syncs before it started.
// Wait waits for the syncs.
func (rs *Records) SaveQueued(ctx context.Context, r *Record) error {
	s, ok := rs.store.(syncer)
	if !ok {
		return rs.Save(ctx, r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := s.NoteBuildRecord(ctx, r.ID, b); err != nil {
		return err
	}
	rs.remember(r)
	ctx = context.WithoutCancel(ctx)
	rs.syncs.Go(func() {
		if err := s.SyncBuildRecord(ctx, r.ID); err != nil {
			slog.Error("making a queued build's record durable", "build", r.ID, "err", err)
		}
	})
	return nil
}

// Wait waits for the records SaveQueued is making durable.
func (rs *Records) Wait() { rs.syncs.Wait() }
