package buildhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
)

// storedTrigger is a build.Trigger as the builds table keeps it.
type storedTrigger struct {
	Repo     string        `json:"repo,omitempty"`
	Tag      string        `json:"tag,omitempty"`
	Digest   digest.Digest `json:"digest,omitempty"`
	Reason   string        `json:"reason"`
	Restarts int           `json:"restarts,omitempty"`
	Force    bool          `json:"force,omitempty"`
}

func storeTrigger(t build.Trigger) storedTrigger {
	return storedTrigger{Repo: t.Ref.Repo, Tag: t.Ref.Tag, Digest: t.Digest, Reason: t.Reason, Restarts: t.Restarts, Force: t.Force}
}

func (s storedTrigger) trigger() build.Trigger {
	return build.Trigger{Ref: build.ImageRef{Repo: s.Repo, Tag: s.Tag}, Digest: s.Digest, Reason: s.Reason, Restarts: s.Restarts, Force: s.Force}
}

// locked runs f in a transaction holding the queue's lock.
func (q *SharedQueue) locked(ctx context.Context, f func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, q.opts.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", sharedQueueLock); err != nil {
			return err
		}
		if err := f(tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_notify($1, '')", notifyChannel) // sent at commit
		return err
	})
}

// enqueue queues a job of each rule with trigger t, or replaces the
// trigger of the rule's queued job, in one transaction; then it tells the
// hooks.
func (q *SharedQueue) enqueue(ctx context.Context, rules []*build.Rule, t build.Trigger) ([]*build.Job, error) {
	var jobs []*build.Job
	var updated []bool
	err := q.locked(ctx, func(tx pgx.Tx) error {
		jobs, updated = nil, nil
		for _, r := range rules {
			job, upd, err := q.enqueueOne(ctx, tx, r, t)
			if err != nil {
				return fmt.Errorf("queueing rule %s: %w", r.Name, err)
			}
			jobs, updated = append(jobs, job), append(updated, upd)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	q.busy()
	q.mu.Unlock()
	q.signal()
	for i, job := range jobs {
		hook := q.hooks.Queued
		if updated[i] {
			hook = q.hooks.Updated
		}
		if hook != nil {
			c := *job
			hook(&c)
		}
	}
	return jobs, nil
}

// enqueueOne queues a job of rule, or updates the trigger of its queued
// job (latest wins; a forced rebuild stays forced). The queue's lock is
// held.
func (q *SharedQueue) enqueueOne(ctx context.Context, tx pgx.Tx, rule *build.Rule, t build.Trigger) (*build.Job, bool, error) {
	var id string
	var old storedTrigger
	err := tx.QueryRow(ctx, "SELECT id, trigger FROM builds WHERE rule = $1 AND state = 'queued'", rule.Name).Scan(&id, &old)
	if err == nil {
		t.Force = t.Force || old.Force
		job := &build.Job{ID: id, Rule: rule, Trigger: t}
		// The record keeps when the job was first queued.
		_, err := tx.Exec(ctx, `UPDATE builds SET trigger = $2, ready_at = now() + $3 * interval '1 microsecond',
			record = $4::jsonb || jsonb_build_object('queued', record->'queued') WHERE id = $1`,
			id, storeTrigger(t), q.opts.Window.Microseconds(), q.opts.NewRecord(job))
		return job, true, err
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, err
	}
	job, err := q.insert(ctx, tx, rule, t)
	return job, false, err
}

// insert adds a queued job of rule. Build ids are made by each instance:
// the rare one another instance already took is replaced.
func (q *SharedQueue) insert(ctx context.Context, tx pgx.Tx, rule *build.Rule, t build.Trigger) (*build.Job, error) {
	for range 5 {
		job := &build.Job{ID: q.opts.NewID(), Rule: rule, Trigger: t}
		tag, err := tx.Exec(ctx, `INSERT INTO builds (id, rule, state, ready_at, trigger, record)
			VALUES ($1, $2, 'queued', now() + $3 * interval '1 microsecond', $4, $5) ON CONFLICT (id) DO NOTHING`,
			job.ID, rule.Name, q.opts.Window.Microseconds(), storeTrigger(t), q.opts.NewRecord(job))
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 1 {
			return job, nil
		}
	}
	return nil, errors.New("no unused build id")
}

// activeRow is a queued or running job as claim sees it.
type activeRow struct {
	id, rule, state, instance string
	wait                      time.Duration // until its window ends
	trigger                   storedTrigger
}

// claim starts the queued jobs this instance may run now, oldest first,
// and returns how long until a job held by its window may start (0: none).
func (q *SharedQueue) claim(ctx context.Context) (time.Duration, error) {
	var claimed []*build.Job
	var wait time.Duration
	var queued, others int
	err := q.locked(ctx, func(tx pgx.Tx) error {
		claimed, wait, queued, others = nil, 0, 0, 0
		rows, err := tx.Query(ctx, `SELECT id, rule, state, coalesce(instance, ''),
			greatest(0, extract(epoch FROM ready_at - now()) * 1000000)::bigint, trigger
			FROM builds WHERE state <> 'done' ORDER BY seq`)
		if err != nil {
			return err
		}
		active, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (activeRow, error) {
			var a activeRow
			var micros int64
			err := r.Scan(&a.id, &a.rule, &a.state, &a.instance, &micros, &a.trigger)
			a.wait = time.Duration(micros) * time.Microsecond
			return a, err
		})
		if err != nil {
			return err
		}
		q.mu.Lock()
		g, free, stopped := q.g, q.opts.Concurrency-q.running, q.stopped
		q.mu.Unlock()
		busy, running := map[string]bool{}, map[string]bool{}
		for _, a := range active {
			busy[a.rule] = true
			switch {
			case a.state == "queued":
				queued++
			case a.instance != q.opts.Instance:
				others++
			}
			if a.state == "running" {
				running[a.rule] = true
			}
		}
		for _, a := range active {
			if a.state != "queued" || free == 0 || stopped {
				continue
			}
			rule := g.Rule(a.rule)
			if rule == nil || running[a.rule] || heldIn(g, a.rule, busy) {
				continue // a rule this instance lacks is left to one that has it
			}
			if a.wait > 0 {
				if wait == 0 || a.wait < wait {
					wait = a.wait
				}
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE builds SET state = 'running', instance = $2,
				lease = now() + $3 * interval '1 microsecond' WHERE id = $1`, a.id, q.opts.Instance, q.opts.Lease.Microseconds()); err != nil {
				return err
			}
			running[a.rule] = true
			free--
			queued--
			claimed = append(claimed, &build.Job{ID: a.id, Rule: rule, Trigger: a.trigger.trigger()})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	q.mu.Lock()
	q.running += len(claimed)
	q.lookedAt(queued, others)
	for _, job := range claimed {
		q.wg.Add(1)
		go q.run(ctx, job)
	}
	q.mu.Unlock()
	return wait, nil
}

// heldIn reports whether a rule the named rule builds on (transitively)
// is busy: its job waits, as that build's push will trigger it again.
func heldIn(g *Graph, name string, busy map[string]bool) bool {
	i, ok := g.byName[name]
	if !ok {
		return false
	}
	for _, a := range g.ancestors[i] {
		if busy[g.rules[a].Name] {
			return true
		}
	}
	return false
}

// finish ends this instance's claim on a job that ran to its end.
func (q *SharedQueue) finish(ctx context.Context, job *build.Job) error {
	return q.locked(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE builds SET state = 'done', instance = NULL, lease = NULL
			WHERE id = $1 AND instance = $2 AND state = 'running'`, job.ID, q.opts.Instance)
		return err
	})
}

// handBack returns a job cut off by this instance's shutdown to the queue,
// in its old place, for any instance to run; if the rule has queued a
// newer job meanwhile, that one will run instead and this one ends.
func (q *SharedQueue) handBack(ctx context.Context, job *build.Job) error {
	var ended *Record
	err := q.locked(ctx, func(tx pgx.Tx) error {
		ended = nil
		var newer string
		err := tx.QueryRow(ctx, "SELECT id FROM builds WHERE rule = $1 AND state = 'queued'", job.Rule.Name).Scan(&newer)
		if errors.Is(err, pgx.ErrNoRows) {
			_, err = tx.Exec(ctx, `UPDATE builds SET state = 'queued', instance = NULL, lease = NULL, ready_at = now()
				WHERE id = $1 AND instance = $2 AND state = 'running'`, job.ID, q.opts.Instance)
			return err
		}
		if err != nil {
			return err
		}
		ended, err = q.end(ctx, tx, job.ID, func(r *Record) {
			r.Error = "interrupted by a shutdown; build " + newer + ", queued since, runs instead"
		})
		return err
	})
	if err == nil && ended != nil && q.opts.Ended != nil {
		q.opts.Ended(job, ended)
	}
	return err
}

// end marks a job done with a failed record, why told by f, and returns
// the record. The queue's lock is held.
func (q *SharedQueue) end(ctx context.Context, tx pgx.Tx, id string, f func(*Record)) (*Record, error) {
	var r Record
	if err := tx.QueryRow(ctx, "SELECT record FROM builds WHERE id = $1", id).Scan(&r); err != nil {
		return nil, err
	}
	var now time.Time
	if err := tx.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
		return nil, err
	}
	now = now.UTC()
	r.Status, r.Finished = StatusFailed, &now
	f(&r)
	_, err := tx.Exec(ctx, "UPDATE builds SET state = 'done', instance = NULL, lease = NULL, record = $2 WHERE id = $1", id, &r)
	return &r, err
}

// StillClaimed returns errBuildEnded unless this instance still runs job
// id: another instance takes a build over when its claim runs out, and
// the one cut off must then not move the rule's tags.
func (q *SharedQueue) StillClaimed(ctx context.Context, id string) error {
	var mine bool
	err := q.opts.Pool.QueryRow(ctx, "SELECT coalesce(instance = $2 AND state = 'running', false) FROM builds WHERE id = $1", id, q.opts.Instance).Scan(&mine)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && !mine {
		return fmt.Errorf("build %s: %w", id, errBuildEnded)
	}
	return err
}
