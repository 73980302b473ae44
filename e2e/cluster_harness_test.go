package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiln/internal/testbed"
)

// clusterOptions describe the kiln instances of a cluster test.
type clusterOptions struct {
	Instances int
	// Heartbeat is cluster.heartbeat, also how often an instance tries to
	// take the lead of a cluster-wide task and renews its claims on the
	// builds it runs; default 1s. cluster.lease is three of them.
	Heartbeat time.Duration
	// Extra returns YAML appended to instance i's config file: top-level
	// sections (proxy:, builds:, buildhook:, ...). dir is the instance's
	// working directory, where relative paths in its config resolve: Extra
	// may write build contexts there. nil: none.
	Extra func(i int, dir string) string
}

// kilnCluster is N kiln instances serving one registry: one S3 bucket
// (same root) and one PostgreSQL database (cluster.postgres), each with
// its own config file and working directory. Everything stops when the
// test ends.
type kilnCluster struct {
	t      *testing.T
	S3     *testbed.S3
	PG     *testbed.Postgres
	DSN    string // the cluster's database
	RunID  string
	root   string
	opts   clusterOptions
	dirs   []string
	nodes  []*kilnServer // each instance's current process
	starts []int         // how many times each was started
	killed []bool        // whether the current process was killed by Kill
}

// startCluster starts the S3 server, PostgreSQL and opts.Instances kiln
// instances sharing them, one after the other (the first migrates the
// schema).
func startCluster(t *testing.T, opts clusterOptions) *kilnCluster {
	t.Helper()
	needSetup(t)
	if opts.Heartbeat == 0 {
		opts.Heartbeat = time.Second
	}
	c := &kilnCluster{t: t, opts: opts, S3: startS3Server(t), PG: startPostgres(t),
		RunID: fmt.Sprintf("cl%s-%d", time.Now().UTC().Format("150405"), os.Getpid())}
	c.root = "/kiln-" + c.RunID
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	if c.DSN, err = c.PG.NewDatabase(ctx, "kiln"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stopAll) // before the servers' cleanups, which run after it
	for i := range opts.Instances {
		dir := filepath.Join(suiteTmp, fmt.Sprintf("%s-kiln%d", c.RunID, i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		c.dirs = append(c.dirs, dir)
		c.nodes = append(c.nodes, nil)
		c.starts = append(c.starts, 0)
		c.killed = append(c.killed, false)
		c.writeConfig(i)
		c.Start(i)
	}
	return c
}

// startPostgres starts Debian's PostgreSQL on loopback with a data
// directory of its own, stopped when the test ends.
func startPostgres(t *testing.T) *testbed.Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	state, err := os.MkdirTemp(suiteTmp, "pg-")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	pg, err := testbed.StartPostgres(ctx, state)
	if err != nil {
		t.Fatalf("PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Log(err)
		}
	})
	t.Logf("PostgreSQL %s up in %s", pg.Addr, time.Since(t0).Round(time.Millisecond))
	return pg
}

// writeConfig writes instance i's config.yml.
func (c *kilnCluster) writeConfig(i int) {
	c.t.Helper()
	cfg := s3Config(c.S3, c.root) + fmt.Sprintf(`cluster:
  postgres: %q
  heartbeat: %s
  lease: %s
`, c.DSN, c.opts.Heartbeat, 3*c.opts.Heartbeat)
	if c.opts.Extra != nil {
		cfg += c.opts.Extra(i, c.dirs[i])
	}
	if err := os.WriteFile(filepath.Join(c.dirs[i], "config.yml"), []byte(cfg), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// Start starts instance i (again, after Kill or Stop) on its config
// file, on a free port, and waits until it answers /v2/. Each start logs
// to a file of its own.
func (c *kilnCluster) Start(i int) {
	c.t.Helper()
	bin, err := buildKiln()
	if err != nil {
		c.t.Fatal(err)
	}
	c.starts[i]++
	env := s3Env(c.S3)
	srv, err := launchKiln(bin, c.RunID, c.dirs[i], fmt.Sprintf("kiln.%d.stderr", c.starts[i]), env, "", "--config", "config.yml")
	if err != nil {
		if srv != nil {
			c.t.Log(kilnTail(srv, 40))
		}
		c.t.Fatalf("kiln %d: %v", i, err)
	}
	c.nodes[i], c.killed[i] = srv, false
}

// Kill ends instance i with SIGKILL and waits for it to exit.
func (c *kilnCluster) Kill(i int) {
	c.nodes[i].kill()
	c.killed[i] = true
}

// Stop ends instance i with SIGTERM; an error if it had died, did not
// exit in time or raced.
func (c *kilnCluster) Stop(i int) error { return c.nodes[i].stop() }

// Restart kills instance i and starts it again.
func (c *kilnCluster) Restart(i int) {
	c.t.Helper()
	c.Kill(i)
	c.Start(i)
}

// Node is instance i's current process (its env has its Addr and URL).
func (c *kilnCluster) Node(i int) *kilnServer { return c.nodes[i] }

// URL is instance i's base URL, http://127.0.0.1:PORT (a new port after
// each start).
func (c *kilnCluster) URL(i int) string { return c.nodes[i].env.URL }

// Dir is instance i's working directory.
func (c *kilnCluster) Dir(i int) string { return c.dirs[i] }

// Stderr is the output of instance i's current process so far.
func (c *kilnCluster) Stderr(i int) string {
	b, _ := os.ReadFile(c.nodes[i].stderr)
	return string(b)
}

// Lines returns the lines of instance i's current output holding every
// one of words.
func (c *kilnCluster) Lines(i int, words ...string) []string {
	var found []string
	for l := range strings.Lines(c.Stderr(i)) {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			found = append(found, strings.TrimRight(l, "\n"))
		}
	}
	return found
}

// stopAll stops the instances with SIGTERM (one that died by itself, or
// raced, fails the test) and shows their output's tail when the test
// failed.
func (c *kilnCluster) stopAll() {
	for i, n := range c.nodes {
		if n == nil {
			continue
		}
		if !c.killed[i] {
			if err := n.stop(); err != nil {
				c.t.Errorf("kiln %d: %v", i, err)
			}
		}
		if c.t.Failed() {
			c.t.Logf("kiln %d:\n%s", i, kilnTail(n, 60))
		}
	}
}

// InstanceID is instance i's current process's name in the cluster, as
// it logged when it joined.
func (c *kilnCluster) InstanceID(i int) string {
	c.t.Helper()
	for _, l := range c.Lines(i, "joined the cluster") {
		if _, id, ok := strings.Cut(l, "instance="); ok {
			id, _, _ = strings.Cut(id, " ")
			return strings.Trim(id, `"`)
		}
	}
	c.t.Fatalf("kiln %d did not log joining the cluster", i)
	return ""
}

// Status runs `kiln cluster status` on instance i's config and returns
// its output.
func (c *kilnCluster) Status(i int) string {
	c.t.Helper()
	bin, err := buildKiln()
	if err != nil {
		c.t.Fatal(err)
	}
	env := s3Env(c.S3)
	return mustRun(c.t, cmdOpts{Dir: c.dirs[i], Env: env, Timeout: time.Minute}, bin, "cluster", "status", "--config", "config.yml")
}
