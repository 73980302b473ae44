package notify

import (
	"context"
	"errors"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// eventsChannel is the LISTEN/NOTIFY channel on which a publish wakes the
// deliverers of every instance.
const eventsChannel = "kiln_events"

// appendLock serialises appends: each takes its id and commits under it,
// so ids commit in order and a cursor never passes an id that a slower
// transaction commits later.
var appendLock = lockKey("kiln events append")

// lockKey is name's advisory lock key, the same in every instance.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// sharedLog is the cluster's outbox in PostgreSQL (tables events and
// webhook_cursors): events in publish order, and for each endpoint the
// id of the last one it has had.
type sharedLog struct {
	pool *pgxpool.Pool
}

// storedEvent is an event as the log holds it.
type storedEvent struct {
	id      int64
	content []byte
}

// append writes contents as the newest events, in one transaction, and
// wakes the deliverers; id is the last one's.
func (l *sharedLog) append(ctx context.Context, contents ...[]byte) (id int64, err error) {
	err = pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", appendLock); err != nil {
			return err
		}
		for _, content := range contents {
			if err := tx.QueryRow(ctx, "INSERT INTO events (content) VALUES ($1) RETURNING id", string(content)).Scan(&id); err != nil {
				return err
			}
		}
		// Sent at the commit, so a woken deliverer finds the event.
		_, err := tx.Exec(ctx, "SELECT pg_notify($1, '')", eventsChannel)
		return err
	})
	return id, err
}

// ensureCursors gives each endpoint without a cursor one before every
// event still held: a new endpoint gets what the others have not all had.
func (l *sharedLog) ensureCursors(ctx context.Context, endpoints []string) error {
	_, err := l.pool.Exec(ctx, `INSERT INTO webhook_cursors (endpoint, delivered)
		SELECT unnest($1::text[]), 0 ON CONFLICT (endpoint) DO NOTHING`, endpoints)
	return err
}

// cursor is the id of the last event endpoint has had.
func (l *sharedLog) cursor(ctx context.Context, endpoint string) (int64, error) {
	var id int64
	err := l.pool.QueryRow(ctx, "SELECT delivered FROM webhook_cursors WHERE endpoint = $1", endpoint).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return id, err
}

// after returns up to limit events after id, oldest first.
func (l *sharedLog) after(ctx context.Context, id int64, limit int) ([]storedEvent, error) {
	rows, err := l.pool.Query(ctx, "SELECT id, content::text FROM events WHERE id > $1 ORDER BY id LIMIT $2", id, limit)
	if err != nil {
		return nil, err
	}
	var out []storedEvent
	for rows.Next() {
		var e storedEvent
		var content string
		if err := rows.Scan(&e.id, &content); err != nil {
			rows.Close()
			return nil, err
		}
		e.content = []byte(content)
		out = append(out, e)
	}
	return out, rows.Err()
}

// advance records that endpoint has had every event up to id. It never
// moves a cursor back: a deposed leader finishing late must not undo its
// successor's progress.
func (l *sharedLog) advance(ctx context.Context, endpoint string, id int64) error {
	_, err := l.pool.Exec(ctx, `INSERT INTO webhook_cursors (endpoint, delivered) VALUES ($1, $2)
		ON CONFLICT (endpoint) DO UPDATE SET delivered = greatest(webhook_cursors.delivered, excluded.delivered)`, endpoint, id)
	return err
}

// prune deletes the events that every one of endpoints has had. The
// instances of a cluster are configured with the same endpoints; one
// without a cursor yet keeps everything.
func (l *sharedLog) prune(ctx context.Context, endpoints []string) error {
	_, err := l.pool.Exec(ctx, `DELETE FROM events WHERE id <= (
		SELECT CASE WHEN count(*) = cardinality($1::text[]) THEN min(delivered) ELSE 0 END
		FROM webhook_cursors WHERE endpoint = ANY($1))`, endpoints)
	return err
}

// count is how many events the log holds.
func (l *sharedLog) count(ctx context.Context) (int, error) {
	var n int
	err := l.pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&n)
	return n, err
}
