package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ---------------------------------------------------------------- commands

type cmdOpts struct {
	Env     []string // added to the environment
	Dir     string
	Stdin   io.Reader
	Timeout time.Duration // default 5 minutes
	Quiet   bool          // do not log stdout (it is still returned)
}

type cmdResult struct {
	Stdout, Stderr string
	Err            error
}

// runCmd runs a command with a timeout, logging the command line and output.
func runCmd(t *testing.T, o cmdOpts, name string, args ...string) cmdResult {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Stdin = o.Stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s: %w", o.Timeout, err)
	}
	t.Logf("$ %s  [%s, %v]", shellQuote(name, args), time.Since(start).Round(time.Millisecond), exitText(err))
	if !o.Quiet {
		logOutput(t, "stdout", stdout.String())
	}
	logOutput(t, "stderr", stderr.String())
	return cmdResult{Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
}

// mustRun is runCmd that fails the test on error; it returns stdout.
func mustRun(t *testing.T, o cmdOpts, name string, args ...string) string {
	t.Helper()
	r := runCmd(t, o, name, args...)
	if r.Err != nil {
		t.Fatalf("%s failed: %v\nstderr:\n%s", shellQuote(name, args), r.Err, tail(r.Stderr, 40))
	}
	return r.Stdout
}

func exitText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func logOutput(t *testing.T, what, s string) {
	t.Helper()
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return
	}
	t.Logf("%s:\n%s", what, tail(s, 60))
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines omitted]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func shellQuote(name string, args []string) string {
	parts := []string{name}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"$\\*?;&|<>()[]{}") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// lastLineWithPrefix returns the last line of s that starts with prefix.
func lastLineWithPrefix(s, prefix string) string {
	var found string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, prefix) {
			found = l
		}
	}
	return found
}
