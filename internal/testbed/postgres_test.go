package testbed

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestStartPostgres starts the server, opens a session in a new database,
// and stops it, after which nothing answers and its data is gone.
func TestStartPostgres(t *testing.T) {
	needTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	p, err := StartPostgres(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	dsn, err := p.NewDatabase(ctx, "launcher")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if db != "launcher" {
		t.Errorf("connected to %q, want launcher", db)
	}
	// A session still open must not hold up Stop (a smart shutdown would).
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	conn.Close(ctx)
	if _, err := os.Stat(p.dir); !os.IsNotExist(err) {
		t.Errorf("data directory %s still there after Stop: %v", p.dir, err)
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if c, err := pgx.Connect(short, p.DSN); err == nil {
		c.Close(ctx)
		t.Errorf("%s still answers after Stop", p.Addr)
	}
}
