package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// versions returns the versions schema_version records, in order.
func versions(t *testing.T, db *DB) []int {
	t.Helper()
	rows, err := db.pool.Query(context.Background(), "SELECT version FROM schema_version ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

func wantAllVersions(t *testing.T, db *DB) {
	t.Helper()
	got := versions(t, db)
	if len(got) != len(migrations) {
		t.Fatalf("schema_version holds %v, want 1..%d", got, len(migrations))
	}
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("schema_version holds %v, want 1..%d", got, len(migrations))
		}
	}
}

// A fresh database gets every step once; opening it again changes nothing.
func TestMigrateFresh(t *testing.T) {
	dsn := newDatabase(t)
	db := open(t, dsn)
	wantAllVersions(t, db)
	if _, err := db.Instances(context.Background()); err != nil {
		t.Errorf("the instances table: %v", err)
	}
	again := open(t, dsn)
	wantAllVersions(t, again)
}

// Instances starting at once take turns: every start succeeds and each
// step runs once (a second run would fail on CREATE TABLE).
func TestMigrateConcurrentStarts(t *testing.T) {
	dsn := newDatabase(t)
	const starts = 6
	var wg sync.WaitGroup
	errs := make([]error, starts)
	dbs := make([]*DB, starts)
	for i := range starts {
		wg.Go(func() { dbs[i], errs[i] = Open(context.Background(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("start %d: %v", i, err)
			continue
		}
		defer dbs[i].Close()
	}
	if t.Failed() {
		return
	}
	wantAllVersions(t, dbs[0])
}

// A kiln older than the schema refuses it, saying why, and leaves it be.
func TestNewerSchemaRefused(t *testing.T) {
	dsn := newDatabase(t)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	future := append(append([]string{}, migrations...), "CREATE TABLE from_the_future (x integer)")
	if err := migrate(context.Background(), pool, future); err != nil {
		t.Fatal(err)
	}

	_, err = Open(context.Background(), dsn)
	var newer *NewerSchemaError
	if !errors.As(err, &newer) {
		t.Fatalf("Open on a newer schema: %v, want a NewerSchemaError", err)
	}
	if newer.Database != len(future) || newer.Known != len(migrations) {
		t.Errorf("error says database %d, known %d; want %d, %d", newer.Database, newer.Known, len(future), len(migrations))
	}
	if !strings.Contains(err.Error(), "newer than this kiln") {
		t.Errorf("unclear message: %v", err)
	}
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT max(version) FROM schema_version").Scan(&n); err != nil || n != len(future) {
		t.Errorf("schema version after the refusal: %d (%v), want %d", n, err, len(future))
	}
	// The refusal gave the lock back: the newer binary still starts.
	if err := migrate(context.Background(), pool, future); err != nil {
		t.Errorf("migrating after a refusal: %v", err)
	}
}

// A DSN that is not one, or a server that is not there, fails the start
// without showing the DSN (it may hold a password).
func TestOpenErrorsHideTheDSN(t *testing.T) {
	for _, dsn := range []string{
		"postgres://kiln:s3cret@127.0.0.1:1/kiln?sslmode=disable&connect_timeout=2",
		"postgres://kiln:s3cret@[bad",
	} {
		_, err := Open(context.Background(), dsn)
		if err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
