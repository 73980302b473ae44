package cluster

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Member is this instance's row in the instances table, kept fresh by a
// heartbeat until Leave.
type Member struct {
	db       *DB
	id, addr string
	started  time.Time
	opts     JoinOptions
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// JoinOptions configure a Member.
type JoinOptions struct {
	Addr      string        // how this instance is reached (shown by kiln cluster status)
	Heartbeat time.Duration // how often the row is refreshed
	Logger    *slog.Logger
	// Now and Ticks stand in for the clock in tests; nil: the real one
	// and a time.Ticker of Heartbeat.
	Now   func() time.Time
	Ticks <-chan time.Time
	// beaten, when set, gets each heartbeat's outcome (tests).
	beaten chan<- error
}

// beatTimeout bounds one heartbeat's write.
const beatTimeout = 10 * time.Second

// Join registers this instance and refreshes its heartbeat on an interval
// until Leave.
func (db *DB) Join(ctx context.Context, opts JoinOptions) (*Member, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Ticks == nil && opts.Heartbeat <= 0 {
		return nil, fmt.Errorf("cluster: heartbeat interval must be positive, got %v", opts.Heartbeat)
	}
	m := &Member{db: db, id: newInstanceID(), addr: opts.Addr, started: opts.Now(), opts: opts,
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := m.beat(ctx); err != nil {
		return nil, fmt.Errorf("cluster: registering this instance: %w", err)
	}
	ticks, stopTicker := opts.Ticks, func() {}
	if ticks == nil {
		t := time.NewTicker(opts.Heartbeat)
		ticks, stopTicker = t.C, t.Stop
	}
	go func() {
		defer close(m.done)
		defer stopTicker()
		m.run(ticks)
	}()
	return m, nil
}

// ID is this instance's name in the instances table.
func (m *Member) ID() string { return m.id }

func (m *Member) run(ticks <-chan time.Time) {
	for {
		select {
		case <-m.stop:
			return
		case <-ticks:
			ctx, cancel := context.WithTimeout(context.Background(), beatTimeout)
			err := m.beat(ctx)
			cancel()
			if err != nil {
				m.opts.Logger.Warn("cluster: heartbeat failed", slog.Any("err", err))
			}
			if m.opts.beaten != nil {
				m.opts.beaten <- err
			}
		}
	}
}

// beat writes the row, re-creating it if it was removed meanwhile.
func (m *Member) beat(ctx context.Context) error {
	_, err := m.db.pool.Exec(ctx, `INSERT INTO instances (id, addr, started, heartbeat) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET heartbeat = EXCLUDED.heartbeat`, m.id, m.addr, m.started, m.opts.Now())
	return err
}

// Leave stops the heartbeat and removes this instance's row. Calling it
// again does nothing.
func (m *Member) Leave(ctx context.Context) error {
	var err error
	m.once.Do(func() {
		close(m.stop)
		<-m.done
		_, err = m.db.pool.Exec(ctx, "DELETE FROM instances WHERE id = $1", m.id)
	})
	return err
}

// newInstanceID names an instance after its host and process, made unique
// by a random suffix (a restarted process may reuse a pid).
func newInstanceID() string {
	host, err := os.Hostname()
	if err != nil {
		host = "kiln"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), rand.Text()[:6])
}
