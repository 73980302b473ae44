package buildhook

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"kiln/cluster"
	"kiln/internal/testbed"
)

func TestMain(m *testing.M) {
	code := m.Run()
	postgres.Stop()
	os.Exit(code)
}

// postgres is the real PostgreSQL the shared queue's tests run against
// (Debian's package), started by the first test that needs it.
var postgres = testbed.SharedPostgres{Name: "buildhook"}

// newDatabase returns the pool of a new database with kiln's schema,
// closed when t ends.
func newDatabase(t testing.TB) *pgxpool.Pool {
	t.Helper()
	db, err := cluster.Open(context.Background(), postgres.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db.Pool()
}
