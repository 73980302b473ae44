package cluster

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Leaders says which of tasks are led now, and by whom: task → the
// leader's Holder (LeadOptions). It reads the advisory locks PostgreSQL
// holds, so a leader that died is gone from it at once.
func (db *DB) Leaders(ctx context.Context, tasks []string) (map[string]string, error) {
	byKey := map[int64]string{}
	for _, t := range tasks {
		byKey[lockKey(t)] = t
	}
	// A bigint advisory key shows as classid (its high 32 bits) and objid
	// (its low ones), objsubid 1.
	rows, err := db.pool.Query(ctx, `SELECT l.classid::bigint, l.objid::bigint, a.application_name
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		return nil, err
	}
	type lock struct {
		high, low uint32
		holder    string
	}
	locks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (lock, error) {
		var high, low int64
		var l lock
		err := r.Scan(&high, &low, &l.holder)
		l.high, l.low = uint32(high), uint32(low)
		return l, err
	})
	if err != nil {
		return nil, err
	}
	leaders := map[string]string{}
	for _, l := range locks {
		if task, ok := byKey[int64(uint64(l.high)<<32|uint64(l.low))]; ok {
			leaders[task] = l.holder
		}
	}
	return leaders, nil
}
