// Package e2e runs real registry clients (the OCI conformance suite, docker,
// skopeo, buildah, podman, go-containerregistry, oras-go) against a real
// running registry.
//
// By default TestMain builds ./cmd/kiln with -race, starts
// `kiln serve --addr 127.0.0.1:PORT --data DIR` and stops it with SIGTERM at
// the end. Environment knobs:
//
//	KILN_E2E_REGISTRY=host:port  test that registry instead (no kiln is started)
//	KILN_E2E=0                   skip the e2e tests (ignored when CI=true)
//
// Missing tools are installed with apt-get when running as root; otherwise
// the test that needs them fails.
package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// registryEnv describes the registry under test.
type registryEnv struct {
	Addr  string // host:port
	URL   string // http://host:port
	Kiln  bool   // true when TestMain started kiln itself
	RunID string // unique per test run, safe inside repository names
}

// Repo returns a repository name unique to this test run.
func (r *registryEnv) Repo(parts ...string) string {
	return "e2e/" + r.RunID + "/" + strings.Join(parts, "/")
}

var (
	theRegistry *registryEnv
	registryErr error
	skipReason  string
	moduleRoot  string
	suiteTmp    string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if ci := isCI(); !ci && os.Getenv("KILN_E2E") == "0" {
		skipReason = "KILN_E2E=0: end-to-end tests skipped on request (ignored when CI=true)"
		return m.Run()
	}

	var err error
	suiteTmp, err = os.MkdirTemp("", "kiln-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(suiteTmp)

	moduleRoot, err = findModuleRoot()
	if err != nil {
		registryErr = err
		return m.Run()
	}

	runID := fmt.Sprintf("r%s-%d", time.Now().UTC().Format("20060102t150405"), os.Getpid())

	if addr := os.Getenv("KILN_E2E_REGISTRY"); addr != "" {
		addr = strings.TrimSuffix(strings.TrimPrefix(addr, "http://"), "/")
		theRegistry = &registryEnv{Addr: addr, URL: "http://" + addr, RunID: runID}
		if err := waitForV2(theRegistry.URL, 30*time.Second, nil); err != nil {
			registryErr = fmt.Errorf("KILN_E2E_REGISTRY=%s: %w", addr, err)
			theRegistry = nil
		}
		fmt.Printf("e2e: testing external registry %s (KILN_E2E_REGISTRY)\n", addr)
		return m.Run()
	}

	srv, err := startKiln(runID)
	if err != nil {
		registryErr = err
		code := m.Run()
		if srv != nil {
			srv.printTail(os.Stdout, 80)
		}
		return code
	}
	theRegistry = srv.env
	code := m.Run()
	if stopErr := srv.stop(); stopErr != nil {
		fmt.Printf("e2e: FAIL: %v\n", stopErr)
		code = 1
	}
	if code != 0 {
		srv.printTail(os.Stdout, 80)
	}
	return code
}

func isCI() bool {
	switch strings.ToLower(os.Getenv("CI")) {
	case "true", "1", "yes":
		return true
	}
	return false
}

// needSetup is for tests that start kiln processes of their own: it skips
// when e2e is disabled on request and fails when the suite setup failed.
func needSetup(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if moduleRoot == "" {
		t.Fatalf("e2e setup failed: %v", registryErr)
	}
}

// needRegistry returns the registry under test, skipping when e2e is
// disabled on request and failing when the registry could not be started.
func needRegistry(t *testing.T) *registryEnv {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if registryErr != nil {
		t.Fatalf("registry under test is not available: %v", registryErr)
	}
	if theRegistry == nil {
		t.Fatal("registry under test is not available")
	}
	return theRegistry
}

func findModuleRoot() (string, error) {
	out, err := exec.Command(goBin(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

func goBin() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
