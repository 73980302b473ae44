package cluster

import (
	"context"
	"os"
	"testing"

	"kiln/internal/testbed"
)

// The tests run against a real PostgreSQL (Debian's package, through
// internal/testbed), started on loopback by the first test that needs it;
// each test gets a database of its own. A server that cannot be started
// fails the tests; only KILN_E2E=0 outside CI (CI=true) skips them.
var server = testbed.SharedPostgres{Name: "cluster"}

func TestMain(m *testing.M) {
	code := m.Run()
	server.Stop()
	os.Exit(code)
}

// newDatabase returns the DSN of an empty database for t.
func newDatabase(t *testing.T) string { return server.Database(t) }

// open opens the database at dsn, closed when t ends.
func open(t *testing.T, dsn string) *DB {
	t.Helper()
	db, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}
