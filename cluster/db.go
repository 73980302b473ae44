// Package cluster is what several kiln instances sharing one store share besides it: a PostgreSQL database (schema, instance heartbeats, leadership of cluster-wide tasks, the token signing key) and its connection pool.
package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is the cluster's database, its schema migrated to this binary's.
type DB struct {
	pool *pgxpool.Pool
}

// connectTimeout bounds the first contact, so that a wrong address fails
// the start rather than hanging it.
const connectTimeout = 30 * time.Second

// Open connects to the database at dsn and migrates its schema (see
// migrate). Errors never show dsn, which may hold a password.
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("cluster.postgres: not a valid DSN")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster.postgres: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cluster.postgres: connecting to %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	if err := migrate(pctx, pool, migrations); err != nil {
		pool.Close()
		return nil, err
	}
	return &DB{pool: pool}, nil
}

// Pool is the connection pool, for the parts of kiln that keep their own
// tables (and later a job queue) in the cluster's database.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes the pool; Leave every Member first.
func (db *DB) Close() { db.pool.Close() }
