package cluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kiln/internal/testbed"
)

// The tests run against a real PostgreSQL (Debian's package, through
// internal/testbed) that TestMain starts on loopback; each test gets a
// database of its own. A server that cannot be started fails the tests;
// only KILN_E2E=0 outside CI (CI=true) skips them.
var (
	server     *testbed.Postgres
	serverErr  error
	serverSkip string
	databases  atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if !isCI() && os.Getenv("KILN_E2E") == "0" {
		serverSkip = "KILN_E2E=0: PostgreSQL tests skipped on request (ignored when CI=true)"
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "kiln-cluster-")
	if err != nil {
		serverErr = err
		return m.Run()
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	server, serverErr = testbed.StartPostgres(ctx, dir)
	cancel()
	if serverErr != nil {
		fmt.Fprintf(os.Stderr, "cluster: PostgreSQL not available: %v\n", serverErr)
		return m.Run()
	}
	code := m.Run()
	if err := server.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "cluster: %v\n", err)
	}
	return code
}

func isCI() bool {
	switch strings.ToLower(os.Getenv("CI")) {
	case "true", "1", "yes":
		return true
	}
	return false
}

// newDatabase returns the DSN of an empty database for t.
func newDatabase(t *testing.T) string {
	t.Helper()
	if serverSkip != "" {
		t.Skip(serverSkip)
	}
	if serverErr != nil {
		t.Fatalf("PostgreSQL not available: %v", serverErr)
	}
	dsn, err := server.NewDatabase(context.Background(), fmt.Sprintf("t%d", databases.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

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
