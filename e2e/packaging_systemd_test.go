package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiln/config"
)

// unitFile is a parsed systemd unit: section -> key -> values in order
// (a key may repeat, as SystemCallFilter does).
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = strings.Trim(l, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("%s: malformed line %q", path, l)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// last is the effective value of a key that is not a list.
func (u unitFile) last(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestPackagingSystemdUnit checks deploy/kiln.service with systemd's own
// tools (systemd-analyze verify and security, systemd-sysusers for its
// user) and its settings against kiln's: the command, the data directory,
// and a stop timeout longer than the graceful shutdown.
func TestPackagingSystemdUnit(t *testing.T) {
	needSetup(t)
	analyze := ensureTool(t, "systemd-analyze", "systemd")
	sysusers := ensureTool(t, "systemd-sysusers", "systemd")
	src := filepath.Join(moduleRoot, "deploy", "kiln.service")
	u := parseUnit(t, src)
	svc := "Service"

	exec := strings.Fields(u.last(svc, "ExecStart"))
	if len(exec) < 2 || exec[0] != "/usr/local/bin/kiln" || exec[1] != "serve" {
		t.Errorf("ExecStart = %q, want /usr/local/bin/kiln serve ...", exec)
	}
	if i := idx(exec, "--config"); i < 0 || i+1 >= len(exec) || !filepath.IsAbs(exec[i+1]) {
		t.Errorf("ExecStart = %q, want --config with an absolute path", exec)
	}
	if user := u.last(svc, "User"); user == "" || user == "root" || user == "0" {
		t.Errorf("User = %q, want a dedicated unprivileged user", user)
	}
	for k, want := range map[string]string{
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "Restart": "on-failure", "StateDirectory": "kiln",
		"ReadWritePaths": "/var/lib/kiln", "Environment": "KILN_DATA=/var/lib/kiln",
	} {
		if got := u.last(svc, k); got != want {
			t.Errorf("[Service] %s = %q, want %q", k, got, want)
		}
	}
	if u.last("Install", "WantedBy") != "multi-user.target" {
		t.Errorf("[Install] WantedBy = %q, want multi-user.target", u.last("Install", "WantedBy"))
	}

	// systemd SIGKILLs after TimeoutStopSec: it must outlast kiln's drain.
	def, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	if stop, err := time.ParseDuration(u.last(svc, "TimeoutStopSec")); err != nil || stop <= def.HTTP.ShutdownTimeout {
		t.Errorf("TimeoutStopSec = %q (%v), want a duration longer than http.shutdown_timeout (%s)",
			u.last(svc, "TimeoutStopSec"), err, def.HTTP.ShutdownTimeout)
	}

	// verify needs ExecStart's binary to exist: point it at the kiln the
	// suite built, in a copy of the unit under the same name.
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "kiln.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/kiln", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	// verify exits 0 on unknown keys and bad values, only warning: any
	// output naming the unit is a failure too.
	r := runCmd(t, cmdOpts{}, analyze, "verify", unit)
	if r.Err != nil || strings.Contains(r.Stderr+r.Stdout, "kiln.service") {
		t.Errorf("systemd-analyze verify: %v\n%s%s", r.Err, r.Stdout, r.Stderr)
	}
	// The hardening must rate at most 2.0 of 10 ("OK") on systemd's scale.
	r = runCmd(t, cmdOpts{Quiet: true}, analyze, "security", "--offline=yes", "--threshold=20", unit)
	if r.Err != nil {
		t.Errorf("systemd-analyze security rates the unit's exposure above 2.0: %v\n%s", r.Err, tail(r.Stdout, 60))
	}

	// deploy/kiln.sysusers creates the unit's User= and Group=.
	r = runCmd(t, cmdOpts{}, sysusers, "--dry-run", "--root="+t.TempDir(), filepath.Join(moduleRoot, "deploy", "kiln.sysusers"))
	out := r.Stdout + r.Stderr
	if r.Err != nil || !strings.Contains(out, "Creating user '"+u.last(svc, "User")+"'") ||
		!strings.Contains(out, "Creating group '"+u.last(svc, "Group")+"'") {
		t.Errorf("systemd-sysusers --dry-run deploy/kiln.sysusers: %v, want it to create user %q and group %q:\n%s",
			r.Err, u.last(svc, "User"), u.last(svc, "Group"), out)
	}
}
