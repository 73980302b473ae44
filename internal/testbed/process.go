package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// daemon is a long-running process started by this package, with its
// output in a log file.
type daemon struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once the process has exited
	waitErr error         // how it exited; read only after exited is closed
}

// startDaemon starts bin with args and the environment env.
func startDaemon(name, logPath string, env []string, bin string, args ...string) (*daemon, error) {
	return startDaemonAs(nil, name, logPath, env, bin, args...)
}

// startDaemonAs is startDaemon as the user as (nil: this process's user).
func startDaemonAs(as *account, name, logPath string, env []string, bin string, args ...string) (*daemon, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	ownProcessGroup(cmd)
	as.apply(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	d := &daemon{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		logFile.Close()
		close(d.exited)
	}()
	return d, nil
}

// pollInterval is how often waitReady asks whether a daemon answers.
const pollInterval = 200 * time.Millisecond

// waitReady polls ready until it succeeds, giving up when the daemon exits
// or timeout passes.
func (d *daemon) waitReady(ctx context.Context, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("%s exited before it answered (%v); its log:\n%s", d.name, d.waitErr, d.logTail(20))
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer within %s (last: %v); its log:\n%s", d.name, timeout, err, d.logTail(20))
		case <-tick.C:
		}
	}
}

// stop asks the daemon to end with SIGTERM and kills its process group if
// it has not ended within grace; anything left in its group is killed too.
func (d *daemon) stop(grace time.Duration) error { return d.stopWith(syscall.SIGTERM, grace) }

// stopWith is stop with another signal, for daemons whose SIGTERM is not
// their quick shutdown.
func (d *daemon) stopWith(sig syscall.Signal, grace time.Duration) error {
	defer killGroup(d.cmd) // children it left behind; an error means none
	select {
	case <-d.exited:
		return nil
	default:
	}
	if err := d.cmd.Process.Signal(sig); err != nil {
		killGroup(d.cmd)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-d.exited:
		return nil
	case <-timer.C:
		killGroup(d.cmd)
		<-d.exited
		return fmt.Errorf("%s (pid %d) did not stop within %s of SIGTERM and was killed", d.name, d.cmd.Process.Pid, grace)
	}
}

// logTail returns the last n lines of the daemon's log.
func (d *daemon) logTail(n int) string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", d.logPath, err)
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
