package cluster

import (
	"context"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func instances(t *testing.T, db *DB) []Instance {
	t.Helper()
	is, err := db.Instances(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// Joining adds this instance's row; each tick refreshes its heartbeat
// (re-creating a row removed meanwhile); Leave removes it.
func TestHeartbeat(t *testing.T) {
	ctx := context.Background()
	db := open(t, newDatabase(t))
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start}
	ticks := make(chan time.Time)
	beaten := make(chan error)
	m, err := db.Join(ctx, JoinOptions{Addr: "10.0.0.1:5000", Now: clock.Now, Ticks: ticks, beaten: beaten})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Leave(ctx)
	want := func(heartbeat time.Time) {
		t.Helper()
		is := instances(t, db)
		if len(is) != 1 {
			t.Fatalf("instances: %+v, want this one only", is)
		}
		i := is[0]
		if i.ID != m.ID() || i.Addr != "10.0.0.1:5000" || !i.Started.Equal(start) || !i.Heartbeat.Equal(heartbeat) {
			t.Fatalf("instance %+v, want id %s, addr 10.0.0.1:5000, started %v, heartbeat %v", i, m.ID(), start, heartbeat)
		}
	}
	want(start)

	tick := func() {
		t.Helper()
		ticks <- clock.now
		if err := <-beaten; err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
	}
	clock.now = start.Add(10 * time.Second)
	tick()
	want(start.Add(10 * time.Second))

	if _, err := db.pool.Exec(ctx, "DELETE FROM instances"); err != nil {
		t.Fatal(err)
	}
	clock.now = start.Add(20 * time.Second)
	tick()
	want(start.Add(20 * time.Second))

	if err := m.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if is := instances(t, db); len(is) != 0 {
		t.Errorf("instances after Leave: %+v", is)
	}
	select {
	case ticks <- clock.now:
		t.Error("a tick was taken after Leave")
	default:
	}
}

// Two instances see each other, each with its own ID.
func TestInstancesListsEveryMember(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	a, b := open(t, dsn), open(t, dsn)
	ma, err := a.Join(ctx, JoinOptions{Addr: "a:5000", Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer ma.Leave(ctx)
	mb, err := b.Join(ctx, JoinOptions{Addr: "b:5000", Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Leave(ctx)
	if ma.ID() == mb.ID() {
		t.Fatalf("both instances are %s", ma.ID())
	}
	is := instances(t, a)
	if len(is) != 2 || is[0].ID != ma.ID() || is[1].ID != mb.ID() {
		t.Errorf("instances: %+v, want %s then %s", is, ma.ID(), mb.ID())
	}
}
