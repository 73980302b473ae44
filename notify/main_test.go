package notify

import (
	"context"
	"os"
	"testing"

	"kiln/cluster"
	"kiln/internal/testbed"
)

func TestMain(m *testing.M) {
	code := m.Run()
	postgres.Stop()
	os.Exit(code)
}

// postgres is the real PostgreSQL the shared outbox's tests run against
// (Debian's package), started by the first test that needs it.
var postgres = testbed.SharedPostgres{Name: "notify"}

// newDatabase returns the DSN of a new, empty database.
func newDatabase(t testing.TB) string { return postgres.Database(t) }

// openDB opens the database at dsn with kiln's schema, as an instance
// does, closed when t ends.
func openDB(t testing.TB, dsn string) *cluster.DB {
	t.Helper()
	db, err := cluster.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}
