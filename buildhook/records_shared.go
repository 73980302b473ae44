package buildhook

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"kiln/storage"
)

// sharedRecords keeps build records in the builds table, beside the
// shared queue's state (see SharedQueue), and build logs in the store.
type sharedRecords struct {
	pool *pgxpool.Pool
	logs *storage.Store
}

// errBuildEnded refuses a record change to a build already ended: its
// instance lost its claim and another one ended it (see takeOver).
var errBuildEnded = errors.New("build already ended by another instance (this one's claim on it ran out)")

func (s sharedRecords) PutBuildRecord(ctx context.Context, id string, record []byte) error {
	tag, err := s.pool.Exec(ctx, "UPDATE builds SET record = $2 WHERE id = $1 AND state <> 'done'", id, string(record))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("build %s: %w", id, errBuildEnded)
	}
	return nil
}

func (s sharedRecords) BuildRecord(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	err := s.pool.QueryRow(ctx, "SELECT record FROM builds WHERE id = $1", id).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, storage.ErrBuildUnknown
	}
	return b, err
}

func (s sharedRecords) BuildIDs(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT id FROM builds")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (s sharedRecords) PutBuildLog(ctx context.Context, id string, log []byte) error {
	return s.logs.PutBuildLog(ctx, id, log)
}

func (s sharedRecords) FinishBuildLog(ctx context.Context, id string, log []byte) error {
	return s.logs.FinishBuildLog(ctx, id, log)
}

func (s sharedRecords) BuildLog(ctx context.Context, id string) ([]byte, error) {
	return s.logs.BuildLog(ctx, id)
}

func (s sharedRecords) BuildLogFrom(ctx context.Context, id string, offset int64) ([]byte, error) {
	return s.logs.BuildLogFrom(ctx, id, offset)
}

// DeleteBuild removes a finished build's record and log; a build still
// queued or running is not removed.
func (s sharedRecords) DeleteBuild(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM builds WHERE id = $1 AND state = 'done'", id); err != nil {
		return err
	}
	return s.logs.DeleteBuild(ctx, id)
}

// FindRecords selects records as Records.Find does, newest first, in one
// query.
func (s sharedRecords) FindRecords(ctx context.Context, q Query) ([]*Record, bool, error) {
	sql, args := findQuery(q)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, err
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Record, error) {
		var rec Record
		err := r.Scan(&rec)
		return &rec, err
	})
	if err != nil {
		return nil, false, err
	}
	if q.Limit > 0 && len(recs) > q.Limit {
		return recs[:q.Limit], true, nil
	}
	return recs, false, nil
}

// findQuery is the query FindRecords runs for q, and its arguments. It
// names only the conditions q sets: pgx prepares each query text once per
// connection, and after a few runs PostgreSQL plans it generically, for
// any arguments; such a plan of "rule = $1 unless $1 is empty" scans the
// whole table, one of "rule = $1" reads the rule's rows through
// builds_by_rule.
func findQuery(q Query) (string, []any) {
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.Rule != "" {
		conds = append(conds, "rule = "+arg(q.Rule))
	}
	if q.Status != "" {
		conds = append(conds, "record->>'status' = "+arg(q.Status))
	}
	if q.Before != "" {
		conds = append(conds, "id < "+arg(q.Before))
	}
	sql := "SELECT record FROM builds"
	if len(conds) > 0 {
		sql += " WHERE " + strings.Join(conds, " AND ")
	}
	sql += " ORDER BY id DESC"
	if q.Limit > 0 {
		sql += " LIMIT " + arg(q.Limit+1) // one more says whether more follow
	}
	return sql, args
}
