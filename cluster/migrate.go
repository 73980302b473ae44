package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema's versions: migrations[i] takes the schema
// from version i to i+1. Append only; never edit a released step.
var migrations = []string{
	`CREATE TABLE instances (
		id        text PRIMARY KEY,
		addr      text NOT NULL,
		started   timestamptz NOT NULL,
		heartbeat timestamptz NOT NULL
	);
	CREATE TABLE signing_keys (
		name    text PRIMARY KEY,
		key     bytea NOT NULL,
		created timestamptz NOT NULL DEFAULT now()
	);`,
	// The build queue and build records (buildhook's shared queue): one
	// row per build, its record the JSON kiln shows. state is the queue's:
	// queued, running (on instance, until lease unless renewed), done.
	`CREATE TABLE builds (
		id       text PRIMARY KEY,
		rule     text NOT NULL,
		state    text NOT NULL CHECK (state IN ('queued', 'running', 'done')),
		seq      bigserial NOT NULL,
		ready_at timestamptz NOT NULL,
		trigger  jsonb NOT NULL,
		instance text,
		lease    timestamptz,
		record   jsonb NOT NULL
	);
	CREATE UNIQUE INDEX builds_one_queued_per_rule ON builds (rule) WHERE state = 'queued';
	CREATE UNIQUE INDEX builds_one_running_per_rule ON builds (rule) WHERE state = 'running';
	CREATE INDEX builds_active ON builds (seq) WHERE state <> 'done';`,
	// The webhook outbox shared by the instances (package notify): events
	// in publish order, and how far each endpoint has taken them.
	`CREATE TABLE events (
		id      bigserial PRIMARY KEY,
		content jsonb NOT NULL,
		created timestamptz NOT NULL DEFAULT now()
	);
	CREATE TABLE webhook_cursors (
		endpoint  text PRIMARY KEY,
		delivered bigint NOT NULL DEFAULT 0
	);`,
	// The images autorebase adopted (buildhook), one JSON document each.
	`CREATE TABLE adoptions (
		repo    text NOT NULL,
		tag     text NOT NULL,
		content jsonb NOT NULL,
		PRIMARY KEY (repo, tag)
	);`,
	// A rule's builds, newest first (buildhook prunes a rule's records
	// after each of its builds ends).
	`CREATE INDEX builds_by_rule ON builds (rule, id);`,
}

// migrateLock is the advisory lock key that serialises migrations across
// instances starting at once ("kiln" in ASCII).
const migrateLock = 0x6b696c6e

// NewerSchemaError is returned by Open when the database was migrated by a
// newer kiln than this one.
type NewerSchemaError struct{ Database, Known int }

func (e *NewerSchemaError) Error() string {
	return fmt.Sprintf("cluster.postgres: the database's schema is version %d, newer than this kiln knows (%d): "+
		"a newer kiln has migrated it; run that version here too (schemas are never migrated backwards)", e.Database, e.Known)
}

// migrate brings the schema to len(steps), each step in a transaction of
// its own recorded in schema_version. Instances starting at once take
// turns on an advisory lock: the first migrates, the others find it done.
func migrate(ctx context.Context, pool *pgxpool.Pool, steps []string) (err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("cluster.postgres: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLock); err != nil {
		return fmt.Errorf("cluster: waiting for the schema lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrateLock); uerr != nil {
			// A session lock ends with its session: end this one rather
			// than give it back to the pool still holding the lock.
			conn.Conn().Close(uctx)
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version integer PRIMARY KEY,
		applied timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("cluster: schema_version: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&current); err != nil {
		return fmt.Errorf("cluster: reading the schema version: %w", err)
	}
	if current > len(steps) {
		return &NewerSchemaError{Database: current, Known: len(steps)}
	}
	for v := current + 1; v <= len(steps); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, steps[v-1]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_version (version) VALUES ($1)", v)
			return err
		})
		if err != nil {
			return fmt.Errorf("cluster: migrating the schema to version %d: %w", v, err)
		}
	}
	return nil
}
