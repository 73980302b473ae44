package buildhook

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"kiln/storage"
)

// countingStore counts durable record writes, notes and final logs.
type countingStore struct {
	*storage.Store
	puts, notes, syncs, finishedLogs atomic.Int32
}

func (c *countingStore) FinishBuildLog(ctx context.Context, id string, log []byte) error {
	c.finishedLogs.Add(1)
	return c.Store.FinishBuildLog(ctx, id, log)
}

func (c *countingStore) SyncBuildRecord(ctx context.Context, id string) error {
	c.syncs.Add(1)
	return c.Store.SyncBuildRecord(ctx, id)
}

func (c *countingStore) PutBuildRecord(ctx context.Context, id string, record []byte) error {
	c.puts.Add(1)
	return c.Store.PutBuildRecord(ctx, id, record)
}

func (c *countingStore) NoteBuildRecord(ctx context.Context, id string, record []byte) error {
	c.notes.Add(1)
	return c.Store.NoteBuildRecord(ctx, id, record)
}

// A running build's progress is noted without waiting for the disk; the
// record that ends it is written durably even when noted.
func TestRecordsNoteDurableOnlyAtTheEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := &countingStore{Store: storage.NewInMemory(storage.Options{})}
	rs := newRecords(store)
	r := &Record{ID: newBuildID(), Rule: "app", Status: StatusRunning}
	if err := rs.Note(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.Builder = "native"
	if err := rs.Note(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.Status = StatusSucceeded
	if err := rs.Note(ctx, r); err != nil {
		t.Fatal(err)
	}
	if store.notes.Load() != 2 || store.puts.Load() != 1 {
		t.Errorf("%d notes, %d durable writes; want 2 and 1", store.notes.Load(), store.puts.Load())
	}
	got, err := rs.Get(ctx, r.ID)
	if err != nil || got.Status != StatusSucceeded || got.Builder != "native" {
		t.Errorf("record %+v, %v", got, err)
	}
}

// A build's progress noted later goes to the store with its log: several
// notes in one interval are one write, Get sees the latest at once, and
// closing the log stores the last one.
func TestRecordsNoteLaterGoesWithTheLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		store := &countingStore{Store: storage.NewInMemory(storage.Options{})}
		rs := newRecords(store)
		r := &Record{ID: newBuildID(), Rule: "app", Status: StatusRunning}
		if err := rs.Note(ctx, r); err != nil {
			t.Fatal(err)
		}
		stored := func() *Record {
			t.Helper()
			b, err := store.BuildRecord(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			var got Record
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			return &got
		}
		rs.OpenLog(ctx, r.ID)
		r.Builder = "native"
		rs.NoteLater(ctx, r)
		r.Attempts = 1
		rs.NoteLater(ctx, r)
		if n := store.notes.Load(); n != 1 {
			t.Errorf("%d notes written before the log's flush, want 1", n)
		}
		if got, err := rs.Get(ctx, r.ID); err != nil || got.Builder != "native" || got.Attempts != 1 {
			t.Errorf("Get before the flush: %+v, %v", got, err)
		}
		time.Sleep(flushInterval)
		synctest.Wait()
		if n := store.notes.Load(); n != 2 {
			t.Errorf("%d notes written after one flush, want 2 (the two noted later as one)", n)
		}
		if got := stored(); got.Builder != "native" || got.Attempts != 1 {
			t.Errorf("stored after the flush: %+v", got)
		}
		r.Result = dg("the result")
		rs.NoteLater(ctx, r)
		if err := rs.CloseLog(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		if got := stored(); got.Result != r.Result {
			t.Errorf("stored after CloseLog: result %q, want %q", got.Result, r.Result)
		}
		r.Status = StatusSucceeded
		if err := rs.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * flushInterval)
		synctest.Wait()
		if got := stored(); got.Status != StatusSucceeded {
			t.Errorf("a note landed after the final record: %+v", got)
		}
	})
}

// A queued build's record is written at once and made durable in the
// background: the build need not wait for the disk to start.
func TestRecordsSaveQueuedSyncsInTheBackground(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := &countingStore{Store: storage.NewInMemory(storage.Options{})}
	rs := newRecords(store)
	r := &Record{ID: newBuildID(), Rule: "app", Status: StatusQueued}
	if err := rs.SaveQueued(ctx, r); err != nil {
		t.Fatal(err)
	}
	if store.notes.Load() != 1 || store.puts.Load() != 0 {
		t.Errorf("%d notes, %d durable writes; want 1 and 0", store.notes.Load(), store.puts.Load())
	}
	if got, err := rs.Get(ctx, r.ID); err != nil || got.Status != StatusQueued {
		t.Errorf("record %+v, %v", got, err)
	}
	rs.Wait()
	if n := store.syncs.Load(); n != 1 {
		t.Errorf("%d syncs after Wait, want 1", n)
	}
}
