package notify

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kiln/cluster"
	"kiln/internal/testbed"
)

func TestMain(m *testing.M) {
	code := m.Run()
	postgres.stop()
	os.Exit(code)
}

// postgres is the real PostgreSQL the shared outbox's tests run against
// (Debian's package, through internal/testbed), started by the first test
// that needs it; each test gets a database of its own.
var postgres testPostgres

type testPostgres struct {
	once      sync.Once
	server    *testbed.Postgres
	dir       string
	err       error
	databases atomic.Int64
}

func (p *testPostgres) stop() {
	if p.server != nil {
		if err := p.server.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "notify: %v\n", err)
		}
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
}

// newDatabase returns the DSN of a new, empty database. A server that
// cannot start fails the test; only KILN_E2E=0 outside CI skips it.
func newDatabase(t testing.TB) string {
	t.Helper()
	if !isCI() && os.Getenv("KILN_E2E") == "0" {
		t.Skip("KILN_E2E=0: PostgreSQL tests skipped on request (ignored when CI=true)")
	}
	postgres.once.Do(func() {
		postgres.dir, postgres.err = os.MkdirTemp("", "kiln-notify-pg-")
		if postgres.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		postgres.server, postgres.err = testbed.StartPostgres(ctx, postgres.dir)
	})
	if postgres.err != nil {
		t.Fatalf("PostgreSQL not available: %v", postgres.err)
	}
	dsn, err := postgres.server.NewDatabase(context.Background(), fmt.Sprintf("n%d", postgres.databases.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

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

func isCI() bool {
	switch strings.ToLower(os.Getenv("CI")) {
	case "true", "1", "yes":
		return true
	}
	return false
}
