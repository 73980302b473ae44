//go:build unix

package testbed

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup puts a daemon in a process group of its own, so that a
// terminal's Ctrl-C reaches the test binary only (which then stops it) and
// killGroup can reach the daemon's own children too (dockerd's containerd).
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func killGroup(cmd *exec.Cmd) error {
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
