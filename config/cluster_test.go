package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Without cluster.postgres kiln runs on its own; the DSN may come from a
// file (a mounted secret), and errors never show it.
func TestClusterPostgres(t *testing.T) {
	def, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if def.Cluster.Enabled() {
		t.Errorf("the default enables a cluster: %+v", def.Cluster)
	}

	dir := t.TempDir()
	const dsn = "postgres://kiln:s3cret@db:5432/kiln"
	secret := filepath.Join(dir, "dsn")
	if err := os.WriteFile(secret, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(t *testing.T, body string) (*Config, error) {
		t.Helper()
		p := filepath.Join(t.TempDir(), "config.yml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(p)
	}
	for name, body := range map[string]string{
		"inline": "cluster: {postgres: '" + dsn + "'}\n",
		"file":   "cluster: {postgres_file: " + secret + "}\n",
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := load(t, body)
			if err != nil {
				t.Fatal(err)
			}
			if !cfg.Cluster.Enabled() || cfg.Cluster.Postgres != dsn {
				t.Errorf("cluster.postgres = %q, want %q", cfg.Cluster.Postgres, dsn)
			}
		})
	}

	for name, tc := range map[string]struct{ body, want string }{
		"both":                       {"cluster: {postgres: '" + dsn + "', postgres_file: " + secret + "}\n", "one of postgres and postgres_file"},
		"missing file":               {"cluster: {postgres_file: " + filepath.Join(dir, "nope") + "}\n", "cluster.postgres_file"},
		"wrong scheme":               {"cluster: {postgres: 'mysql://kiln:s3cret@db/kiln'}\n", "cluster.postgres"},
		"not a DSN":                  {"cluster: {postgres: 's3cret'}\n", "cluster.postgres"},
		"zero interval":              {"cluster: {heartbeat: 0s}\n", "cluster.heartbeat"},
		"lease under two heartbeats": {"cluster: {heartbeat: 10s, lease: 15s}\n", "cluster.lease"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want an error naming %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}
