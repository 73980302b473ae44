package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a private PostgreSQL server (Debian's postgresql package) on
// a free loopback port, with its own data directory and a superuser that
// needs no password on loopback.
type Postgres struct {
	DSN     string // postgres://kiln@127.0.0.1:PORT/postgres?sslmode=disable
	Addr    string // 127.0.0.1:PORT
	LogFile string // the server's output

	server *daemon
	dir    string // data directory and socket, removed by Stop
}

const (
	postgresUser = "kiln"
	// postgresAccount is who runs the server when this process is root
	// (PostgreSQL refuses root); the package creates it.
	postgresAccount      = "postgres"
	postgresReadyTimeout = time.Minute
	// postgresStopGrace covers a fast shutdown, which ends every session.
	postgresStopGrace = 30 * time.Second
)

// StartPostgres initialises a database cluster and starts PostgreSQL on it,
// its log under stateDir. It installs Debian's postgresql when initdb or
// postgres is missing (as root only). The caller must call Stop.
func StartPostgres(ctx context.Context, stateDir string) (*Postgres, error) {
	bin, err := postgresBinDir(ctx)
	if err != nil {
		return nil, err
	}
	as, err := lookupAccount(postgresAccount)
	if err != nil {
		return nil, err
	}
	// The cluster gets a short directory of its own, not one in stateDir:
	// the socket path must fit in about 100 bytes, and when this process
	// is root the server's user must reach it, which a test's private
	// temporary directory does not let it.
	dir, err := os.MkdirTemp("", "kiln-pg-")
	if err != nil {
		return nil, err
	}
	p := &Postgres{LogFile: filepath.Join(stateDir, "postgres.log"), dir: dir}
	if err := p.initdb(ctx, bin, as); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		err := p.start(ctx, bin, as)
		switch {
		case err == nil:
			return p, nil
		case attempt < 3 && logMentions(p.LogFile, "could not bind"):
			// Another process took the free port first: pick another.
		default:
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

// initdb makes the cluster in p.dir/data, owned by as.
func (p *Postgres) initdb(ctx context.Context, bin string, as *account) error {
	if err := as.own(p.dir); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// trust applies to the local socket and to loopback addresses only;
	// the server listens on nothing else.
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "--pgdata", filepath.Join(p.dir, "data"),
		"--username", postgresUser, "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync")
	cmd.Env = postgresEnv()
	cmd.Dir = p.dir // the server's user may not enter this process's directory
	as.apply(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, lastLines(string(out), 20))
	}
	return nil
}

// start starts the server on a free port and waits until it answers.
func (p *Postgres) start(ctx context.Context, bin string, as *account) error {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(addr)
	args := []string{"-D", filepath.Join(p.dir, "data"), "-p", port,
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + p.dir,
		"-c", "max_connections=200",
		// A test server's data need not survive a crash of the machine.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"}
	server, err := startDaemonAs(as, "postgres", p.LogFile, postgresEnv(), filepath.Join(bin, "postgres"), args...)
	if err != nil {
		return err
	}
	p.Addr = addr
	p.DSN = (&url.URL{Scheme: "postgres", User: url.User(postgresUser), Host: addr, Path: "/postgres", RawQuery: "sslmode=disable"}).String()
	if err := server.waitReady(ctx, postgresReadyTimeout, p.answers); err != nil {
		server.stopWith(syscall.SIGINT, postgresStopGrace)
		return err
	}
	p.server = server
	return nil
}

// answers succeeds once a session can be opened.
func (p *Postgres) answers(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// NewDatabase creates an empty database and returns its DSN, so that tests
// sharing one server do not see each other's tables.
func (p *Postgres) NewDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, p.DSN)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	u, err := url.Parse(p.DSN)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// Stop stops the server with a fast shutdown (SIGINT: SIGTERM would wait
// for every client to leave), then SIGKILL if it lingers, and removes its
// data. Calling it again does nothing.
func (p *Postgres) Stop() error {
	if p.server == nil {
		return nil
	}
	server := p.server
	p.server = nil
	err := server.stopWith(syscall.SIGINT, postgresStopGrace)
	if rmErr := os.RemoveAll(p.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	if err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	return nil
}

// postgresEnv is the environment minus PostgreSQL's own settings (PGDATA,
// PGPORT and the like), which would override the flags.
func postgresEnv() []string {
	return environ(func(name string) bool { return strings.HasPrefix(name, "PG") })
}

// postgresBinDir returns Debian's directory of PostgreSQL server programs,
// of the newest version installed, installing the package if there is none.
func postgresBinDir(ctx context.Context) (string, error) {
	if dir, ok := newestPostgres(); ok {
		return dir, nil
	}
	if err := aptInstall(ctx, "PostgreSQL (initdb, postgres)", "postgresql"); err != nil {
		return "", err
	}
	if dir, ok := newestPostgres(); ok {
		return dir, nil
	}
	return "", errors.New("initdb and postgres are still missing from /usr/lib/postgresql/*/bin after installing postgresql")
}

func newestPostgres() (string, bool) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	var dirs []string
	for _, m := range matches {
		dir := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			dirs = append(dirs, dir)
		}
	}
	if len(dirs) == 0 {
		return "", false
	}
	version := func(dir string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	return dirs[0], true
}
