package buildhook

import (
	"context"
	"testing"

	"kiln/storage"
)

// countingStore counts durable record writes and notes.
type countingStore struct {
	*storage.Store
	puts, notes int
}

func (c *countingStore) PutBuildRecord(ctx context.Context, id string, record []byte) error {
	c.puts++
	return c.Store.PutBuildRecord(ctx, id, record)
}

func (c *countingStore) NoteBuildRecord(ctx context.Context, id string, record []byte) error {
	c.notes++
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
	if store.notes != 2 || store.puts != 1 {
		t.Errorf("%d notes, %d durable writes; want 2 and 1", store.notes, store.puts)
	}
	got, err := rs.Get(ctx, r.ID)
	if err != nil || got.Status != StatusSucceeded || got.Builder != "native" {
		t.Errorf("record %+v, %v", got, err)
	}
}
