package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"kiln/cluster"
	"kiln/config"
	"kiln/internal/testbed"
)

// clusterDSN starts a PostgreSQL for t (Debian's package, through
// internal/testbed) and returns the DSN of an empty database on it. It
// fails t when the server cannot start; only KILN_E2E=0 outside CI skips.
func clusterDSN(t *testing.T) string {
	t.Helper()
	switch strings.ToLower(os.Getenv("CI")) {
	case "true", "1", "yes":
	default:
		if os.Getenv("KILN_E2E") == "0" {
			t.Skip("KILN_E2E=0: PostgreSQL tests skipped on request (ignored when CI=true)")
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	pg, err := testbed.StartPostgres(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Error(err)
		}
	})
	dsn, err := pg.NewDatabase(ctx, "kiln")
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// anonymousPullConfig is a kiln with alice in its htpasswd file and
// anonymous pull on: clients get bearer tokens.
func anonymousPullConfig(t *testing.T, htpasswd, dsn string) *config.Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.Auth.Htpasswd = htpasswd
	cfg.Auth.Anonymous = config.AnonymousPull
	cfg.Cluster.Postgres = dsn
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// fetchToken gets a bearer token from the kiln at addr, as user ("" for
// an anonymous one).
func fetchToken(t *testing.T, addr, user, password string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/kiln/v1/token?service=kiln&scope=repository:a:pull", nil)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.Token == "" {
		t.Fatalf("token from %s: status %d, %v", addr, resp.StatusCode, err)
	}
	return out.Token
}

// bearerStatus is the status of GET /v2/ on addr with token.
func bearerStatus(t *testing.T, addr, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/v2/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func writeHtpasswd(t *testing.T, user, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Two instances sharing cluster.postgres accept each other's tokens, and
// kiln cluster status lists both until one stops cleanly.
func TestClusterTokensAndStatus(t *testing.T) {
	t.Parallel()
	dsn := clusterDSN(t)
	htpasswd := writeHtpasswd(t, "alice", "secret")
	addrA, stopA := startServe(t, anonymousPullConfig(t, htpasswd, dsn), slog.New(slog.DiscardHandler))
	addrB, _ := startServe(t, anonymousPullConfig(t, htpasswd, dsn), slog.New(slog.DiscardHandler))

	for _, user := range []struct{ name, password string }{{"", ""}, {"alice", "secret"}} {
		if got := bearerStatus(t, addrB, fetchToken(t, addrA, user.name, user.password)); got != 200 {
			t.Errorf("B answered A's token for %q with %d, want 200", user.name, got)
		}
		if got := bearerStatus(t, addrA, fetchToken(t, addrB, user.name, user.password)); got != 200 {
			t.Errorf("A answered B's token for %q with %d, want 200", user.name, got)
		}
	}

	confFile := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(confFile, []byte("storage: {driver: inmemory}\ncluster: {postgres: '"+dsn+"'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	status := func() string {
		t.Helper()
		cmd := newClusterCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs([]string{"status", "--config", confFile})
		if err := cmd.ExecuteContext(t.Context()); err != nil {
			t.Fatalf("kiln cluster status: %v\n%s", err, out.String())
		}
		return out.String()
	}
	out := status()
	if !strings.Contains(out, addrA) || !strings.Contains(out, addrB) || strings.Contains(out, "stale") {
		t.Errorf("status lacks %s or %s, or has a stale one:\n%s", addrA, addrB, out)
	}
	stopA()
	out = status()
	if strings.Contains(out, addrA) || !strings.Contains(out, addrB) {
		t.Errorf("status after A stopped cleanly, want B only:\n%s", out)
	}
}

// Without cluster.postgres an instance signs with a key of its own: as
// before, another refuses its tokens.
func TestTokensWithoutClusterStayLocal(t *testing.T) {
	t.Parallel()
	htpasswd := writeHtpasswd(t, "alice", "secret")
	addrA, _ := startServe(t, anonymousPullConfig(t, htpasswd, ""), slog.New(slog.DiscardHandler))
	addrB, _ := startServe(t, anonymousPullConfig(t, htpasswd, ""), slog.New(slog.DiscardHandler))
	if got := bearerStatus(t, addrB, fetchToken(t, addrA, "", "")); got != 401 {
		t.Errorf("B answered A's token with %d, want 401", got)
	}
}

// Status says so when there is no cluster to show.
func TestClusterStatusWithoutCluster(t *testing.T) {
	t.Parallel()
	confFile := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(confFile, []byte("storage: {driver: inmemory}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := newClusterCmd()
	cmd.SetOut(new(bytes.Buffer))
	cmd.SetErr(new(bytes.Buffer))
	cmd.SetArgs([]string{"status", "--config", confFile})
	if err := cmd.ExecuteContext(t.Context()); err == nil || !strings.Contains(err.Error(), "cluster.postgres is not set") {
		t.Errorf("status without a cluster: %v", err)
	}
}

// An instance silent for longer than stale is marked so; each shows the
// builds it runs and the tasks it leads.
func TestPrintInstancesMarksStaleAndShowsLeads(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	leads := leadsByInstance(leaderTasks, map[string]string{taskGC: "fresh", taskUpstreamWatch: "fresh", "unknown": "silent"})
	err := printInstances(&out, []cluster.Instance{
		{ID: "fresh", Addr: "a:5000", Started: now.Add(-time.Hour), Heartbeat: now.Add(-5 * time.Second)},
		{ID: "silent", Addr: "b:5000", Started: now.Add(-time.Hour), Heartbeat: now.Add(-time.Minute)},
	}, runsByInstance([]cluster.RunningBuild{{ID: "B1", Rule: "app", Instance: "fresh"}, {ID: "B2", Rule: "tests", Instance: "fresh"}}), leads, now, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "fresh") || strings.Contains(lines[1], "stale") || !strings.HasSuffix(lines[1], " B1 (app),B2 (tests)  upstream-watch,gc") ||
		!strings.Contains(lines[2], "silent") || !strings.Contains(lines[2], "1m0s ago (stale)") || !strings.HasSuffix(lines[2], " -") {
		t.Errorf("status:\n%s", out.String())
	}
}
