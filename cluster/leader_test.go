package cluster

import (
	"context"
	"testing"
	"time"
)

// contender is one instance calling Lead, driven by the test through its
// ticks; changed hears its leadership change, started and stopped its
// run start and end.
type contender struct {
	name             string
	db               *DB
	ticks            chan time.Time
	changed          chan bool
	started, stopped chan struct{}
	cancel           context.CancelFunc
	done             chan struct{}
}

func contend(t *testing.T, db *DB, name, task string) *contender {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &contender{name: name, db: db, ticks: make(chan time.Time), changed: make(chan bool),
		started: make(chan struct{}, 1), stopped: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		db.Lead(ctx, task, LeadOptions{Holder: name, Ticks: c.ticks, changed: c.changed}, func(ctx context.Context) {
			c.started <- struct{}{}
			<-ctx.Done()
			c.stopped <- struct{}{}
		})
	}()
	t.Cleanup(func() {
		cancel()
		for {
			select {
			case <-c.done:
				return
			case <-c.changed:
			}
		}
	})
	return c
}

// leads waits for c to take the lead and start its run.
func (c *contender) leads(t *testing.T) {
	t.Helper()
	if !<-c.changed {
		t.Fatalf("%s: gave up a lead it did not have", c.name)
	}
	<-c.started
}

// follows ticks c twice: its loop takes each tick only once the try
// before it failed, and it must not take the lead meanwhile.
func (c *contender) follows(t *testing.T) {
	t.Helper()
	for range 2 {
		select {
		case c.ticks <- time.Now():
		case v := <-c.changed:
			t.Fatalf("%s: leadership changed to %v while another leads", c.name, v)
		}
	}
	select {
	case <-c.started:
		t.Fatalf("%s: ran without the lead", c.name)
	default:
	}
}

// takesOver ticks c until it takes the lead: its try may be under way
// when the lead is freed, or come before the server has released the lock
// of a session it killed.
func (c *contender) takesOver(t *testing.T) {
	t.Helper()
	for leading := false; !leading; {
		select {
		case c.ticks <- time.Now():
		case leading = <-c.changed:
			if !leading {
				t.Fatalf("%s: gave up a lead it did not have", c.name)
			}
		}
	}
	<-c.started
}

// lost waits for c's run to be cancelled and c to report the lead gone.
func (c *contender) lost(t *testing.T) {
	t.Helper()
	<-c.stopped
	if <-c.changed {
		t.Fatalf("%s: took a lead it had", c.name)
	}
}

// Of two instances on one database, one leads; when its context ends it
// stops its run and releases the lead, and the other takes it at its
// next try. A tick while leading (a check of the connection) keeps it.
func TestLeadOneAtATimeAndHandOver(t *testing.T) {
	dsn := newDatabase(t)
	a := contend(t, open(t, dsn), "a", "watch")
	a.leads(t)
	b := contend(t, open(t, dsn), "b", "watch")
	b.follows(t)
	for range 2 {
		select {
		case a.ticks <- time.Now():
		case <-a.changed:
			t.Fatal("a lost the lead at a check of a healthy connection")
		}
	}

	a.cancel()
	a.lost(t)
	<-a.done
	b.takesOver(t)
}

// Tasks are led apart: one instance may lead two tasks, another instance
// a third.
func TestLeadTasksApart(t *testing.T) {
	dsn := newDatabase(t)
	db := open(t, dsn)
	contend(t, db, "a", "watch").leads(t)
	contend(t, db, "a", "gc").leads(t)
	contend(t, db, "a", "watch").follows(t) // same instance, same task: still one
	contend(t, open(t, dsn), "b", "retention").leads(t)
}

// When the leader's session ends under it (here killed by the server),
// its run is cancelled at once, without waiting for a check, and the
// other instance takes the lead; the old leader follows.
func TestLeadLostWhenSessionKilled(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	a := contend(t, open(t, dsn), "a", "watch")
	a.leads(t)
	db := open(t, dsn)
	b := contend(t, db, "b", "watch")
	b.follows(t)

	var killed int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = 'a' AND datname = current_database()) k`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("killed %d sessions named a, want 1", killed)
	}
	a.lost(t)
	b.takesOver(t)
	a.follows(t)
}

// Leaders names each led task's holder, and only led tasks. (The key of
// "retention" is negative, that of "watch" positive.)
func TestLeadersNamesHolders(t *testing.T) {
	dsn := newDatabase(t)
	db := open(t, dsn)
	contend(t, db, "a", "watch").leads(t)
	contend(t, open(t, dsn), "b", "retention").leads(t)
	got, err := db.Leaders(context.Background(), []string{"watch", "gc", "retention"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["watch"] != "a" || got["retention"] != "b" {
		t.Errorf("leaders %v, want watch: a, retention: b", got)
	}
}
