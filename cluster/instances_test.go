package cluster

import (
	"context"
	"testing"
	"time"
)

// Forget removes the instances silent since the bound, and only those.
func TestForgetRemovesSilentInstances(t *testing.T) {
	ctx := context.Background()
	db := open(t, newDatabase(t))
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	oldClock, newClock := &fakeClock{now: start}, &fakeClock{now: start.Add(time.Hour)}
	old, err := db.Join(ctx, JoinOptions{Heartbeat: time.Hour, Now: oldClock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Leave(ctx)
	alive, err := db.Join(ctx, JoinOptions{Heartbeat: time.Hour, Now: newClock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Leave(ctx)

	forgotten, err := db.Forget(ctx, start.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(forgotten) != 1 || forgotten[0] != old.ID() {
		t.Errorf("forgot %v, want [%s]", forgotten, old.ID())
	}
	if is := instances(t, db); len(is) != 1 || is[0].ID != alive.ID() {
		t.Errorf("instances left: %+v, want %s only", is, alive.ID())
	}
}
