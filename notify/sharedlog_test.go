package notify

import (
	"testing"
	"time"
)

// An append waits for an earlier one still in its transaction: ids
// commit in order, so a deliverer that has seen id n has seen every id
// below it, and its cursor never passes an event committed late.
func TestAppendsCommitInIDOrder(t *testing.T) {
	db := openDB(t, newDatabase(t))
	log := &sharedLog{pool: db.Pool()}
	ctx := t.Context()
	slow, err := db.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback(ctx)
	var slowID int64
	if _, err := slow.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", appendLock); err != nil {
		t.Fatal(err)
	}
	if err := slow.QueryRow(ctx, `INSERT INTO events (content) VALUES ('{}') RETURNING id`).Scan(&slowID); err != nil {
		t.Fatal(err)
	}

	type appended struct {
		id, visibleBelow int64
		err              error
	}
	done := make(chan appended, 1)
	go func() {
		var a appended
		a.id, a.err = log.append(ctx, []byte(`{"type":"push"}`))
		if a.err == nil {
			a.err = db.Pool().QueryRow(ctx, "SELECT count(*) FROM events WHERE id < $1", a.id).Scan(&a.visibleBelow)
		}
		done <- a
	}()
	// The append must be seen waiting on the lock before the slow one commits.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for waiting := false; !waiting; {
		select {
		case a := <-done:
			t.Fatalf("an append returned id %d (err %v) while id %d was not committed", a.id, a.err, slowID)
		case <-tick.C:
		}
		err := db.Pool().QueryRow(ctx, `SELECT count(*) > 0 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	if a.id <= slowID || a.visibleBelow != 1 {
		t.Errorf("append got id %d seeing %d events below it; want an id after %d, which it sees", a.id, a.visibleBelow, slowID)
	}
}
