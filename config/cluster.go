package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Cluster configures what several kiln instances on one store share: a
// PostgreSQL database.
type Cluster struct {
	// Postgres is the database's DSN, a URL (postgres://…) or key=value
	// words; PostgresFile names a file holding it instead. Neither: kiln
	// runs on its own, with no database.
	Postgres     string        `yaml:"postgres"`
	PostgresFile string        `yaml:"postgres_file"`
	Heartbeat    time.Duration `yaml:"heartbeat"` // how often an instance records that it is alive
	// Lease is how long a claim on a running build lasts unless renewed
	// (every Heartbeat): once it runs out, another instance takes over.
	Lease time.Duration `yaml:"lease"`
}

// Enabled reports whether this instance is part of a cluster.
func (c Cluster) Enabled() bool { return c.Postgres != "" }

// resolvePostgres reads cluster.postgres_file into Postgres: a DSN may
// hold a password, which is better kept out of the config file.
func (c *Config) resolvePostgres() error {
	cl := &c.Cluster
	if cl.PostgresFile == "" {
		return nil
	}
	if cl.Postgres != "" {
		return fmt.Errorf("cluster: set one of postgres and postgres_file")
	}
	b, err := os.ReadFile(cl.PostgresFile)
	if err != nil {
		return fmt.Errorf("cluster.postgres_file: %w", err)
	}
	cl.Postgres = strings.TrimSpace(string(b))
	if cl.Postgres == "" {
		return fmt.Errorf("cluster.postgres_file: %s is empty", cl.PostgresFile)
	}
	return nil
}

// validateCluster checks the DSN's form only (the errors never show it:
// it may hold a password); whether it reaches a database is for the start.
func (c *Config) validateCluster(bad func(key, format string, args ...any)) {
	cl := c.Cluster
	positive(bad, "cluster.heartbeat", cl.Heartbeat)
	if cl.Lease < 2*cl.Heartbeat {
		// One late heartbeat must not hand a live build to another instance.
		bad("cluster.lease", "%v is less than twice cluster.heartbeat (%v)", cl.Lease, cl.Heartbeat)
	}
	if !cl.Enabled() {
		return
	}
	if strings.Contains(cl.Postgres, "://") {
		u, err := url.Parse(cl.Postgres)
		if err != nil {
			bad("cluster.postgres", "not a URL")
		} else if u.Scheme != "postgres" && u.Scheme != "postgresql" {
			bad("cluster.postgres", "scheme %q (want postgres:// or postgresql://)", u.Scheme)
		}
	} else if !strings.Contains(cl.Postgres, "=") {
		bad("cluster.postgres", "neither a postgres:// URL nor key=value words")
	}
}
