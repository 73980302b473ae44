package testbed

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ConformanceOptions are the settings of one run of the OCI
// distribution-spec conformance suite.
type ConformanceOptions struct {
	// RepoPrefix is where the run's repositories go: RepoPrefix/RUN/repo1
	// and RepoPrefix/RUN/repo2, RUN fresh for every run. Default
	// "conformance".
	RepoPrefix string
	// Env holds more of the suite's settings (KEY=VALUE, see its README),
	// over the defaults and the process environment.
	Env []string
}

// ConformanceResult is what the suite reported. Its counters are grouped
// as the suite's report.html groups them.
type ConformanceResult struct {
	Passed   int // Pass
	Failed   int // FAIL and Error
	Skipped  int // Skip and Disabled
	Failures []ConformanceFailure
	Summary  string // the suite's summary: result, counters, status of each API and data set
	LogFile  string // the suite's full result tree
	ExitErr  error  // the suite's exit status: not nil when anything failed
}

// ConformanceFailure is a check that failed.
type ConformanceFailure struct {
	Check    string   // its path in the suite, such as "sha512 blobs/mount/blob-mount"
	Messages []string // what the suite said about it
}

// String is the line the project's tests log.
func (r *ConformanceResult) String() string {
	return fmt.Sprintf("conformance: %d passed, %d failed, %d skipped", r.Passed, r.Failed, r.Skipped)
}

// conformanceAPIs are the suite's API areas; every one is on unless the
// caller's environment or options turn it off.
var conformanceAPIs = []string{
	"OCI_API_PING", "OCI_API_PULL", "OCI_API_PUSH", "OCI_API_TAGS_LIST",
	"OCI_API_REFERRER", "OCI_API_TAGS_DELETE", "OCI_API_MANIFESTS_DELETE", "OCI_API_BLOBS_DELETE",
}

// conformanceLegacyTarget are older names of the target settings, which
// the suite reads before the new ones: left in the environment, they could
// point the run somewhere else.
var conformanceLegacyTarget = []string{"OCI_ROOT_URL", "OCI_NAMESPACE", "OCI_CROSSMOUNT_NAMESPACE"}

// RunConformance runs the suite against the registry at url (http:// or
// https://), building it first if needed. Its reports (junit.xml,
// report.html, results.yaml) and its output (conformance.log,
// conformance.stderr) go to dir. The error is for a suite that could not
// run or report; failed checks are in the result.
func RunConformance(ctx context.Context, dir, url string, opts ConformanceOptions) (*ConformanceResult, error) {
	registry, tls, err := conformanceTarget(url)
	if err != nil {
		return nil, err
	}
	bin, err := buildConformance(ctx)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	// The suite reads ./oci-conformance.yaml if there is one: it runs
	// where there is none.
	workDir, err := os.MkdirTemp(dir, "cwd-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(workDir)

	env := conformanceEnv(registry, tls, dir, opts)
	logFile := filepath.Join(dir, "conformance.log")
	stdout, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir, cmd.Env = workDir, env
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	exitErr := cmd.Run()
	if err := os.WriteFile(filepath.Join(dir, "conformance.stderr"), stderr.Bytes(), 0o644); err != nil {
		return nil, err
	}
	out, err := os.ReadFile(logFile)
	if err != nil {
		return nil, err
	}
	rep := parseConformanceReport(string(out))
	if rep.counts == nil {
		return nil, fmt.Errorf("the conformance suite reported no results (exit: %v); its log:\n%s", exitErr, lastLines(stderr.String(), 40))
	}
	return &ConformanceResult{
		Passed:   rep.counts["Pass"],
		Failed:   rep.counts["FAIL"] + rep.counts["Error"],
		Skipped:  rep.counts["Skip"] + rep.counts["Disabled"],
		Failures: rep.failures,
		Summary:  rep.summary,
		LogFile:  logFile,
		ExitErr:  exitErr,
	}, nil
}

// conformanceEnv is the suite's environment: the process's, every API
// area on unless that says otherwise, opts.Env, and the target with fresh
// repositories, which nothing overrides.
func conformanceEnv(registry, tls, resultsDir string, opts ConformanceOptions) []string {
	prefix := strings.TrimSuffix(opts.RepoPrefix, "/")
	if prefix == "" {
		prefix = "conformance"
	}
	run := fmt.Sprintf("r%s-%d-%d", time.Now().UTC().Format("20060102150405"), os.Getpid(), rand.IntN(1_000_000))
	env := environ(func(name string) bool { return slices.Contains(conformanceLegacyTarget, name) })
	for _, name := range conformanceAPIs {
		if _, set := os.LookupEnv(name); !set {
			env = append(env, name+"=true")
		}
	}
	env = append(env, opts.Env...)
	// Where names repeat, exec uses the last.
	return append(env,
		"OCI_REGISTRY="+registry,
		"OCI_TLS="+tls,
		"OCI_REPO1="+prefix+"/"+run+"/repo1",
		"OCI_REPO2="+prefix+"/"+run+"/repo2",
		"OCI_RESULTS_DIR="+resultsDir,
	)
}

// conformanceTarget splits url into the suite's OCI_REGISTRY (host:port)
// and OCI_TLS settings.
func conformanceTarget(url string) (registry, tls string, err error) {
	u := strings.TrimSuffix(strings.TrimRight(url, "/"), "/v2")
	if r, ok := strings.CutPrefix(u, "http://"); ok && r != "" {
		return r, "disabled", nil
	}
	if r, ok := strings.CutPrefix(u, "https://"); ok && r != "" {
		return r, "enabled", nil
	}
	return "", "", fmt.Errorf("conformance: registry URL %q: want http://host:port or https://host:port", url)
}
