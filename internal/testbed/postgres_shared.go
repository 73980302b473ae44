package testbed

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// SharedPostgres is the PostgreSQL a test package's tests share: started
// by the first test that asks for a database, stopped by Stop (from
// TestMain). Each test gets a database of its own. Name prefixes the
// databases and the state directory.
type SharedPostgres struct {
	Name string

	once      sync.Once
	server    *Postgres
	dir       string
	err       error
	databases atomic.Int64
}

// Database returns the DSN of a new, empty database. A server that cannot
// start fails the test; only KILN_E2E=0 outside CI (CI=true) skips it.
func (p *SharedPostgres) Database(t testing.TB) string {
	t.Helper()
	if !isCI() && os.Getenv("KILN_E2E") == "0" {
		t.Skip("KILN_E2E=0: PostgreSQL tests skipped on request (ignored when CI=true)")
	}
	p.once.Do(func() {
		if p.dir, p.err = os.MkdirTemp("", "kiln-"+p.Name+"-pg-"); p.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		p.server, p.err = StartPostgres(ctx, p.dir)
	})
	if p.err != nil {
		t.Fatalf("PostgreSQL not available: %v", p.err)
	}
	dsn, err := p.server.NewDatabase(context.Background(), fmt.Sprintf("%s%d", p.Name, p.databases.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// Stop stops the server, if a test started it, and removes its state.
func (p *SharedPostgres) Stop() {
	if p.server != nil {
		if err := p.server.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", p.Name, err)
		}
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
}

func isCI() bool {
	switch strings.ToLower(os.Getenv("CI")) {
	case "true", "1", "yes":
		return true
	}
	return false
}
