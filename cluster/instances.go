package cluster

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Instance is one kiln instance's row.
type Instance struct {
	ID        string
	Addr      string
	Started   time.Time
	Heartbeat time.Time
}

// Instances lists the registered instances, oldest first.
func (db *DB) Instances(ctx context.Context) ([]Instance, error) {
	rows, err := db.pool.Query(ctx, "SELECT id, addr, started, heartbeat FROM instances ORDER BY started, id")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Instance, error) {
		var i Instance
		err := r.Scan(&i.ID, &i.Addr, &i.Started, &i.Heartbeat)
		return i, err
	})
}

// Forget removes the rows of instances whose last heartbeat is before
// silentSince (killed ones: a clean stop removes its own row) and returns
// their IDs.
func (db *DB) Forget(ctx context.Context, silentSince time.Time) ([]string, error) {
	rows, err := db.pool.Query(ctx, "DELETE FROM instances WHERE heartbeat < $1 RETURNING id", silentSince)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
