package buildhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/buildhook/native"
)

func TestBuildahBudArgsSandbox(t *testing.T) {
	b := BuildahBuilder{Root: t.TempDir(), Limits: Limits{Memory: 256 << 20, Pids: 300}}
	rule := &build.Rule{Context: "/ctx", Dockerfile: "Dockerfile", Args: map[string]string{"B": "2", "A": "1"}}
	args := b.budArgs(rule, sandbox{IDMap: "0:1879048192:65536", Cgroup: true}, "127.0.0.1:5000/x:staging", 1700000000)
	joined := " " + strings.Join(args, " ") + " "
	for _, want := range []string{
		" bud --isolation oci ", " --pull=never ",
		" --userns-uid-map 0:1879048192:65536 ", " --userns-gid-map 0:1879048192:65536 ",
		" --network=none ", " --memory 268435456 ", " --ulimit nproc=300:300 ",
		" --build-arg A=1 --build-arg B=2 --timestamp 1700000000 --build-arg SOURCE_DATE_EPOCH=1700000000 /ctx ",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("buildah %s: lacks %q", joined, strings.TrimSpace(want))
		}
	}
	// No login during the build, never chroot, and none of the namespace
	// flags that make buildah 1.28 forget --network=none.
	for _, never := range []string{"chroot", "--authfile", "--creds", "--pid", "--ipc", "--uts", "host"} {
		if strings.Contains(joined, never) {
			t.Errorf("buildah %s: has %q", joined, never)
		}
	}

	// Unprivileged: no memory cgroup, so a per-process bound.
	rule.Network = "default"
	args = b.budArgs(rule, sandbox{IDMap: "0:1:65536"}, "x", -1)
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--network") }) {
		t.Errorf("network: default, yet %v", args)
	}
	joined = " " + strings.Join(args, " ") + " "
	if !strings.Contains(joined, " --ulimit data=268435456:268435456 ") || strings.Contains(joined, "--memory") {
		t.Errorf("unprivileged: buildah %s, want --ulimit data= and no --memory", joined)
	}
	// Undated: buildah dates it now, and SOURCE_DATE_EPOCH is the rule's
	// own when it sets one.
	if strings.Contains(joined, "--timestamp") || strings.Contains(joined, "SOURCE_DATE_EPOCH") {
		t.Errorf("undated build: buildah %s", joined)
	}
	rule.Args["SOURCE_DATE_EPOCH"] = "42"
	joined = " " + strings.Join(b.budArgs(rule, sandbox{IDMap: "0:1:65536"}, "x", 42), " ") + " "
	if strings.Count(joined, "SOURCE_DATE_EPOCH") != 1 || !strings.Contains(joined, " --timestamp 42 ") {
		t.Errorf("rule's own SOURCE_DATE_EPOCH: buildah %s", joined)
	}
}

func TestRuleNetwork(t *testing.T) {
	for network, want := range map[string]string{"": "none", "none": "none", "default": "default", "host": "none"} {
		r := &build.Rule{Network: network}
		if got := ruleNetwork(r); got != want {
			t.Errorf("ruleNetwork(%q) = %q, want %q", network, got, want)
		}
		if got := dockerNetwork(r); got != want {
			t.Errorf("dockerNetwork(%q) = %q, want %q", network, got, want)
		}
	}
}

func TestWithSelfAuth(t *testing.T) {
	job := &build.Job{Registry: "127.0.0.1:5000", Self: build.SelfAccess{Username: "kiln-builder", Password: "s3cret"}}
	var seen string
	err := withSelfAuth(job, func(authFile string) error {
		seen = authFile
		dir, err := os.Stat(filepath.Dir(authFile))
		if err != nil {
			return err
		}
		if dir.Mode().Perm() != 0o700 {
			t.Errorf("the auth file's directory has mode %v, want 0700", dir.Mode().Perm())
		}
		file, err := os.Stat(authFile)
		if err != nil {
			return err
		}
		if file.Mode().Perm() != 0o600 {
			t.Errorf("the auth file has mode %v, want 0600", file.Mode().Perm())
		}
		b, err := os.ReadFile(authFile)
		if err != nil {
			return err
		}
		if want := `{"auths":{"127.0.0.1:5000":{"auth":"a2lsbi1idWlsZGVyOnMzY3JldA=="}}}`; string(b) != want {
			t.Errorf("auth file %s, want %s", b, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(seen)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the auth file's directory outlives the pull or push: %v", err)
	}

	job.Self = build.SelfAccess{}
	withSelfAuth(job, func(authFile string) error {
		if authFile != "" {
			t.Errorf("no login, yet an auth file %q", authFile)
		}
		return nil
	})
	wantErr := errors.New("push failed")
	if err := withSelfAuth(job, func(string) error { return wantErr }); err != wantErr {
		t.Errorf("withSelfAuth returned %v, want fn's error", err)
	}
}

func TestBuildInputs(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(
		"ARG REG\nFROM ${REG}/a:1 AS one\nFROM scratch\nFROM one\nCOPY --from=r:1/b:2 /x /x\nCOPY --from=one /y /y\nFROM ${REG}/a:1\n"), 0o644)
	got, err := buildInputs(&build.Rule{Context: dir, Dockerfile: "Dockerfile", Args: map[string]string{"REG": "r:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"r:1/a:1", "r:1/b:2"}; !slices.Equal(got, want) {
		t.Errorf("buildInputs = %q, want %q", got, want)
	}
}

func TestSubIDCount(t *testing.T) {
	file := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(file, []byte("alice:100000:65536\nkiln:165536:30000\n1001:200000:40000\nbad line\nkiln:x:y\n"), 0o644)
	for _, c := range []struct {
		name, uid string
		want      int
	}{{"alice", "1000", 65536}, {"kiln", "1001", 70000}, {"bob", "1002", 0}} {
		got, err := subIDCount(file, c.name, c.uid)
		if err != nil || got != c.want {
			t.Errorf("subIDCount(%s, %s) = %d, %v; want %d", c.name, c.uid, got, err, c.want)
		}
	}
	if n, err := subIDCount(filepath.Join(t.TempDir(), "missing"), "alice", "1000"); n != 0 || err != nil {
		t.Errorf("a missing file: %d, %v", n, err)
	}
}

// fakeSandboxed is a buildah stand-in whose sandbox is ready or not.
type fakeSandboxed struct{ ready error }

func (fakeSandboxed) Name() string          { return "buildah" }
func (f fakeSandboxed) SandboxReady() error { return f.ready }
func (fakeSandboxed) Build(context.Context, *build.Job, io.Writer) (digest.Digest, error) {
	return "", errors.New("not here")
}

// TestAutoNeverUnsandboxed: with no Docker daemon, auto picks buildah only
// when it can sandbox, and otherwise fails saying what to install.
func TestAutoNeverUnsandboxed(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM r/a:1\nRUN make\n"), 0o644)
	rule := &build.Rule{Name: "r", Context: dir, Dockerfile: "Dockerfile", Builder: "auto"}

	missing := fmt.Errorf("%w: buildah and runc not installed; %s", errNoSandbox, sandboxInstall)
	s := &Service{builders: map[string]build.Builder{"native": &native.Builder{}, "docker": DockerBuilder{}, "buildah": fakeSandboxed{ready: missing}}}
	b, _, err := s.chooseBuilder(context.Background(), rule)
	if err == nil || !errors.Is(err, errNoSandbox) || !strings.Contains(err.Error(), "apt-get install buildah runc uidmap") || !strings.Contains(err.Error(), "line 2: RUN make") {
		t.Errorf("no sandbox: builder %v, error %v; want a failure naming the command and what to install", b, err)
	}

	s.builders["buildah"] = fakeSandboxed{}
	b, why, err := s.chooseBuilder(context.Background(), rule)
	if err != nil || b.Name() != "buildah" || !strings.Contains(why, "no Docker daemon answers") || !strings.Contains(why, "sandboxed") {
		t.Errorf("a sandbox: builder %v, why %q, error %v", b, why, err)
	}

	// A builder that cannot say whether it sandboxes is not trusted to.
	s.builders["buildah"] = DockerBuilder{}
	if _, _, err := s.chooseBuilder(context.Background(), rule); !errors.Is(err, errNoSandbox) {
		t.Errorf("a builder without SandboxReady: %v, want errNoSandbox", err)
	}
}

// TestBuildahRefusesWithoutSandbox: with no runc (nor buildah) on PATH the
// buildah builder fails, saying what to install, before running anything.
func TestBuildahRefusesWithoutSandbox(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM r/a:1\nRUN make\n"), 0o644)
	job := &build.Job{Registry: "127.0.0.1:1", Rule: &build.Rule{Context: dir, Dockerfile: "Dockerfile"}, Staging: build.ImageRef{Repo: "x", Tag: "y"}}
	var log strings.Builder
	_, err := BuildahBuilder{Root: t.TempDir()}.Build(context.Background(), job, &log)
	if !errors.Is(err, errNoSandbox) || !strings.Contains(err.Error(), "buildah and runc not installed") || !strings.Contains(err.Error(), sandboxInstall) {
		t.Errorf("Build without a sandbox: %v", err)
	}
	if log.Len() != 0 {
		t.Errorf("Build without a sandbox ran something: %q", log.String())
	}
}

func TestUserNamespacesUsable(t *testing.T) {
	// This machine runs the e2e builds in user namespaces: they must work.
	if err := userNamespacesUsable(); err != nil {
		t.Fatal(err)
	}
}

// TestBuildahStoppedBySIGTERM: at the build's timeout buildah gets SIGTERM
// (it then stops its container; SIGKILL would leave that running). A fake
// buildah records which signal it got.
func TestBuildahStoppedBySIGTERM(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "signal")
	script := "#!/bin/sh\ntrap 'echo TERM > " + marker + "; kill $!; exit 0' TERM\nsleep 300 >/dev/null 2>&1 &\necho ready\nwait\n"
	if err := os.WriteFile(filepath.Join(dir, "buildah"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	c := BuildahBuilder{Root: dir}.cmd(ctx, w, "bud")
	done := make(chan error, 1)
	go func() { done <- c.Run(); w.Close() }()
	line := make([]byte, len("ready\n"))
	if _, err := io.ReadFull(r, line); err != nil || string(line) != "ready\n" {
		t.Fatalf("the fake buildah did not start: %q %v", line, err)
	}
	cancel()
	go io.Copy(io.Discard, r)
	<-done
	if b, err := os.ReadFile(marker); err != nil || string(b) != "TERM\n" {
		t.Errorf("buildah was not stopped with SIGTERM: %q %v", b, err)
	}
}
