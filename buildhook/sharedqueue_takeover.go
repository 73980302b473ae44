package buildhook

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"kiln/buildhook/build"
)

// renewAndTakeOver renews this instance's claims on the jobs it runs, then
// ends the jobs whose claims ran out and queues them again.
func (q *SharedQueue) renewAndTakeOver(ctx context.Context) {
	if _, err := q.opts.Pool.Exec(ctx, `UPDATE builds SET lease = now() + $2 * interval '1 microsecond'
		WHERE instance = $1 AND state = 'running'`, q.opts.Instance, q.opts.Lease.Microseconds()); err != nil {
		if ctx.Err() == nil {
			q.opts.Logger.Warn("build queue: renewing claims", "err", err)
		}
		return // a kiln that cannot renew its own claims takes none over
	}
	if err := q.takeOver(ctx); err != nil && ctx.Err() == nil {
		q.opts.Logger.Warn("build queue: taking over builds", "err", err)
	}
}

// expiredRow is a running job whose claim ran out.
type expiredRow struct {
	id, rule, instance string
	trigger            storedTrigger
	record             Record
}

// ended is a record the queue ended, with its job for the hooks.
type ended struct {
	job    *build.Job
	record *Record
}

// takeOver ends every job whose claim ran out: its instance was killed or
// lost the database. A job still unfinished is queued again (reason
// resume), unless the rule has a queued job already, which then builds,
// or instances stopped twice while it ran (see maxRestarts).
func (q *SharedQueue) takeOver(ctx context.Context) error {
	var requeued []*build.Job
	var done []ended
	err := q.locked(ctx, func(tx pgx.Tx) error {
		requeued, done = nil, nil
		rows, err := tx.Query(ctx, `SELECT id, rule, instance, trigger, record FROM builds
			WHERE state = 'running' AND lease < now() ORDER BY seq`)
		if err != nil {
			return err
		}
		expired, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (expiredRow, error) {
			var e expiredRow
			err := r.Scan(&e.id, &e.rule, &e.instance, &e.trigger, &e.record)
			return e, err
		})
		if err != nil {
			return err
		}
		q.mu.Lock()
		g := q.g
		q.mu.Unlock()
		for _, e := range expired {
			rule := g.Rule(e.rule)
			if e.record.Done() {
				// It ended; its instance died before saying so.
				if _, err := tx.Exec(ctx, "UPDATE builds SET state = 'done', instance = NULL, lease = NULL WHERE id = $1", e.id); err != nil {
					return err
				}
				continue
			}
			if rule == nil {
				continue // left to an instance that knows the rule
			}
			job, err := q.takeOverOne(ctx, tx, rule, e)
			if err != nil {
				return fmt.Errorf("build %s: %w", e.id, err)
			}
			done = append(done, job)
			q.opts.Logger.Warn("build taken over: its instance stopped renewing its claim", "build", e.id, "rule", e.rule, "instance", e.instance, "outcome", job.record.Error)
		}
		for _, d := range done {
			if d.job.ID != "" {
				requeued = append(requeued, d.job)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range done {
		if q.opts.Ended != nil {
			q.opts.Ended(&build.Job{ID: d.record.ID, Rule: d.job.Rule}, d.record)
		}
	}
	for _, job := range requeued {
		if q.hooks.Queued != nil {
			c := *job
			q.hooks.Queued(&c)
		}
	}
	if len(requeued) > 0 {
		q.mu.Lock()
		q.busy()
		q.mu.Unlock()
		q.signal()
	}
	return nil
}

// takeOverOne ends e and decides what runs instead. It returns the ended
// record and, in job, the new job when one was queued (job.ID empty
// otherwise). The queue's lock is held.
func (q *SharedQueue) takeOverOne(ctx context.Context, tx pgx.Tx, rule *build.Rule, e expiredRow) (ended, error) {
	restarts := e.trigger.Restarts + 1
	why := fmt.Sprintf("instance %s stopped renewing its claim on this build (killed, crashed or cut off from the database)", e.instance)
	out := ended{job: &build.Job{Rule: rule}}
	var newer string
	err := tx.QueryRow(ctx, "SELECT id FROM builds WHERE rule = $1 AND state = 'queued'", rule.Name).Scan(&newer)
	switch {
	case err == nil:
		why += "; build " + newer + ", queued since, runs instead"
	case !errors.Is(err, pgx.ErrNoRows):
		return out, err
	case restarts >= maxRestarts:
		why += fmt.Sprintf("; instances stopped twice while it ran (possibly because of the build itself): "+
			"not run again; trigger rule %s by hand once the cause is found", rule.Name)
	default:
		t := e.trigger.trigger()
		t.Reason, t.Restarts = "resume", restarts
		job, err := q.insert(ctx, tx, rule, t)
		if err != nil {
			return out, err
		}
		out.job = job
		why += "; run again as build " + job.ID
	}
	r, err := q.end(ctx, tx, e.id, func(r *Record) { r.Error = why })
	out.record = r
	return out, err
}
