//go:build unix

package testbed

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDaemonStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	// The shell ignores SIGTERM and so does its child, which must die too.
	dir := t.TempDir()
	childPid := filepath.Join(dir, "child.pid")
	d, err := startDaemon("stubborn", filepath.Join(dir, "log"), nil,
		"sh", "-c", `trap "" TERM; sleep 300 & echo $! >`+childPid+`; echo started; wait`)
	if err != nil {
		t.Fatal(err)
	}
	started := func(context.Context) error {
		if strings.Contains(d.logTail(1), "started") {
			return nil
		}
		return errors.New("not yet")
	}
	if err := d.waitReady(context.Background(), 10*time.Second, started); err != nil {
		t.Fatal(err)
	}
	err = d.stop(300 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("stop = %v, want an error saying it was killed", err)
	}
	select {
	case <-d.exited:
	default:
		t.Error("stop returned before the process exited")
	}
	b, err := os.ReadFile(childPid)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); running(pid); {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the daemon's child (pid %d) outlived stop", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDaemonStopIsGracefulWhenItCan(t *testing.T) {
	d, err := startDaemon("sleeper", filepath.Join(t.TempDir(), "log"), nil, "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.stop(10 * time.Second); err != nil {
		t.Errorf("stop = %v, want nil for a process that ends on SIGTERM", err)
	}
}

func TestWaitReadyReportsAnEarlyExit(t *testing.T) {
	d, err := startDaemon("quitter", filepath.Join(t.TempDir(), "log"), nil,
		"sh", "-c", "echo xattr check failed; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	never := func(context.Context) error { return errors.New("no answer") }
	err = d.waitReady(context.Background(), time.Minute, never)
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "xattr check failed") {
		t.Errorf("waitReady = %v, want an error saying it exited, with its log", err)
	}
}

func TestWaitReadyGivesUpAtItsDeadline(t *testing.T) {
	d, err := startDaemon("sleeper", filepath.Join(t.TempDir(), "log"), nil, "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	defer d.stop(10 * time.Second)
	never := func(context.Context) error { return errors.New("no answer") }
	err = d.waitReady(context.Background(), 500*time.Millisecond, never)
	if err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("waitReady = %v, want a timeout", err)
	}
}

// running reports whether pid is a live process; a zombie, killed and
// waiting for init to reap it, is not.
func running(pid int) bool {
	if stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		// pid (comm) STATE ...; comm may hold spaces and parentheses
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
	}
	return syscall.Kill(pid, 0) == nil
}
