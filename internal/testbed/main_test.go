package testbed

import (
	"os"
	"strings"
	"testing"
)

// needTools skips tests that build or start real tools when KILN_E2E=0
// asks for it, as the e2e tests do; CI (CI=true) always runs them.
func needTools(t *testing.T) {
	t.Helper()
	switch strings.ToLower(os.Getenv("CI")) {
	case "true", "1", "yes":
		return
	}
	if os.Getenv("KILN_E2E") == "0" {
		t.Skip("KILN_E2E=0: tests of real tools skipped on request (ignored when CI=true)")
	}
}
