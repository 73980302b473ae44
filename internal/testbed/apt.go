package testbed

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// aptMu keeps this process's apt-get runs apart; other processes wait on
// dpkg's lock (DPkg::Lock::Timeout).
var aptMu sync.Mutex

// aptInstall installs Debian packages, which needs root; why says what
// needs them, for the error when it cannot.
func aptInstall(ctx context.Context, why string, pkgs ...string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s is missing and installing it needs root: apt-get install -y %s", why, strings.Join(pkgs, " "))
	}
	aptMu.Lock()
	defer aptMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-q", "-o", "DPkg::Lock::Timeout=600"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, lastLines(out.String(), 20))
		}
		return nil
	}
	if err := run("update"); err != nil {
		return err
	}
	return run(append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...)
}
