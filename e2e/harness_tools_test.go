package e2e

import (
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// ---------------------------------------------------------------- tools

var (
	aptMu      sync.Mutex
	aptUpdated bool
)

// ensureTool returns the path of bin, installing Debian package pkg with
// apt-get when it is missing (only possible as root; otherwise it fails).
func ensureTool(t *testing.T, bin, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(bin); err == nil {
		return p
	}
	aptInstall(t, pkg, bin)
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s is still missing after apt-get install -y %s", bin, pkg)
	}
	return p
}

// aptInstall installs Debian packages; why names what needs them.
func aptInstall(t *testing.T, pkg, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("%s is needed but missing, and the test cannot install it: not root. Install it with `apt-get install -y %s` (or set KILN_E2E=0 to skip the e2e tests outside CI)", why, pkg)
	}
	aptMu.Lock()
	defer aptMu.Unlock()
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	if !aptUpdated {
		mustRun(t, cmdOpts{Env: env, Timeout: 10 * time.Minute}, "apt-get", "update", "-q")
		aptUpdated = true
	}
	mustRun(t, cmdOpts{Env: env, Timeout: 15 * time.Minute}, "apt-get", "install", "-y", "-q", "--no-install-recommends", pkg)
}
