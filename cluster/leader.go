package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// LeadOptions configure Lead.
type LeadOptions struct {
	// Interval is how often a follower tries to take the lead and a
	// leader checks that its connection still answers.
	Interval time.Duration
	// Holder names this instance on the lock's connection (its
	// application_name), so that status can tell who leads.
	Holder string
	Logger *slog.Logger
	// Ticks stands in for a time.Ticker of Interval in tests.
	Ticks <-chan time.Time
	// changed, when set, hears each change of leadership: true when taken,
	// false when given up or lost (tests).
	changed chan<- bool
}

// checkTimeout bounds a leader's check of its connection: a connection
// that does not answer in it is taken for lost.
const checkTimeout = 10 * time.Second

// errNotification is a notification on the lock's connection, which
// listens to nothing: it should never come.
var errNotification = errors.New("cluster: unexpected notification on the leader's connection")

// Lead runs run while this instance leads task, until ctx ends: of all
// the instances calling Lead with the same task on one database, one at a
// time leads. Leadership is a PostgreSQL session advisory lock held on a
// connection taken out of the pool for as long as it lasts, so it ends
// when that session does: at a clean stop, when the process dies, or when
// the connection is lost. run's context is cancelled as soon as the
// connection is seen lost, at once when the server closes it, at the next
// check when it goes silent; Lead then waits for run to return and tries
// again every interval, as a follower does. If run returns early this
// instance keeps the lead, idle, so no other instance takes it up.
func (db *DB) Lead(ctx context.Context, task string, opts LeadOptions, run func(ctx context.Context)) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ticks := opts.Ticks
	if ticks == nil {
		t := time.NewTicker(opts.Interval)
		defer t.Stop()
		ticks = t.C
	}
	log := opts.Logger.With(slog.String("task", task))
	key := lockKey(task)
	for {
		conn, err := db.tryLock(ctx, key, opts.Holder)
		if err != nil && ctx.Err() == nil {
			log.Warn("cluster: trying to take the lead", slog.Any("err", err))
		}
		if conn != nil {
			log.Info("cluster: leading")
			notify(opts.changed, true)
			err := hold(ctx, conn, ticks, run)
			release(conn, key)
			notify(opts.changed, false)
			if ctx.Err() != nil {
				log.Info("cluster: gave up the lead")
				return
			}
			log.Warn("cluster: lost the lead", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
	}
}

// lockKey is task's advisory lock key, the same in every instance.
func lockKey(task string) int64 {
	h := fnv.New64a()
	h.Write([]byte("kiln leader " + task))
	return int64(h.Sum64())
}

// tryLock takes the lock on a pooled connection, which it then takes out
// of the pool for good (a lock must never go back to the pool with it);
// nil when another session holds the lock.
func (db *DB) tryLock(ctx context.Context, key int64, holder string) (*pgx.Conn, error) {
	pc, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	var locked bool
	if err := pc.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&locked); err != nil || !locked {
		// A failed query may have left the lock taken: the connection
		// must not be reused.
		if err != nil {
			conn := pc.Hijack()
			closeConn(conn)
		} else {
			pc.Release()
		}
		return nil, err
	}
	conn := pc.Hijack()
	if holder != "" {
		// Only for status: a failure here does not lose the lead.
		conn.Exec(ctx, "SELECT set_config('application_name', $1, false)", holder)
	}
	return conn, nil
}

// hold runs run until ctx ends or conn is lost (the error says how),
// checking conn at every tick. It returns once run has.
func hold(ctx context.Context, conn *pgx.Conn, ticks <-chan time.Time, run func(context.Context)) error {
	runCtx, stopRun := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		run(runCtx)
	}()
	defer func() {
		stopRun()
		<-ran
	}()
	for {
		// Between checks the connection is read from, idle: a session the
		// server ends (a restart, pg_terminate_backend) shows at once.
		watchCtx, stopWatch := context.WithCancel(ctx)
		lost := make(chan error, 1)
		go func() { lost <- conn.PgConn().WaitForNotification(watchCtx) }()
		select {
		case err := <-lost:
			stopWatch()
			if err == nil {
				err = errNotification
			}
			return err
		case <-ctx.Done():
			stopWatch()
			<-lost
			return nil
		case <-ticks:
			stopWatch()
			if err := <-lost; err != nil && watchCtx.Err() == nil {
				return err
			}
			if err := ping(ctx, conn); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
}

// ping checks that conn answers within checkTimeout.
func ping(ctx context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		return fmt.Errorf("checking the connection: %w", err)
	}
	return nil
}

// release unlocks key before ending conn's session: the server releases
// the locks of a closed session only once its backend has exited, after
// the close returned, and the next leader should not wait for that.
func release(conn *pgx.Conn, key int64) {
	if !conn.IsClosed() {
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", key)
		cancel()
	}
	closeConn(conn)
}

// closeConn ends conn's session, which releases its locks.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	conn.Close(ctx)
}

func notify(ch chan<- bool, v bool) {
	if ch != nil {
		ch <- v
	}
}
