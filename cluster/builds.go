package cluster

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// RunningBuild is a build an instance has claimed (see buildhook's
// SharedQueue, which keeps the builds table).
type RunningBuild struct {
	ID, Rule, Instance string
	Lease              time.Time // when the claim runs out unless renewed
}

// RunningBuilds lists the builds instances run now, by instance, and
// counts the builds queued.
func (db *DB) RunningBuilds(ctx context.Context) (running []RunningBuild, queued int, err error) {
	rows, err := db.pool.Query(ctx, `SELECT id, rule, instance, lease FROM builds
		WHERE state = 'running' ORDER BY instance, id`)
	if err != nil {
		return nil, 0, err
	}
	running, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (RunningBuild, error) {
		var b RunningBuild
		err := r.Scan(&b.ID, &b.Rule, &b.Instance, &b.Lease)
		return b, err
	})
	if err != nil {
		return nil, 0, err
	}
	err = db.pool.QueryRow(ctx, "SELECT count(*) FROM builds WHERE state = 'queued'").Scan(&queued)
	return running, queued, err
}
