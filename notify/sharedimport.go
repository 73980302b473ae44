package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// importLock makes the instances that start at once take turns moving the
// store's outbox: the first moves it, the others find it empty.
var importLock = lockKey("kiln events import")

// importOutbox moves what outbox holds (events a single-process kiln left
// undelivered before it joined a cluster) to the shared outbox, in order,
// so that they are delivered rather than forgotten. They are taken out of
// outbox once committed: a crash in between delivers them twice, never
// loses them.
func (n *Notifier) importOutbox(ctx context.Context, outbox Outbox) (moved int, err error) {
	conn, err := n.shared.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", importLock); err != nil {
		return 0, err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", importLock); err != nil {
			// The lock ends with its session: end this one rather than
			// give it back to the pool still holding it.
			conn.Conn().Close(uctx)
		}
	}()
	stored, err := outbox.Events(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the event outbox: %w", err)
	}
	var contents [][]byte
	for _, se := range stored {
		var e Event
		if err := json.Unmarshal(se.Content, &e); err != nil {
			n.opts.Logger.Warn("dropping an unreadable event from the outbox", slog.String("id", se.ID), slog.Any("error", err))
		} else if n.wanted(e.Type) {
			contents = append(contents, se.Content)
		}
	}
	if len(contents) > 0 {
		if _, err := n.shared.append(ctx, contents...); err != nil {
			return 0, fmt.Errorf("moving the event outbox to the cluster's: %w", err)
		}
	}
	for _, se := range stored {
		if err := outbox.DeleteEvent(ctx, se.ID); err != nil {
			return 0, err
		}
	}
	return len(contents), nil
}
