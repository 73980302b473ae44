package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var countsLine = regexp.MustCompile(`^conformance: (\d+) passed, (\d+) failed, (\d+) skipped$`)

// TestConformance runs the official OCI distribution-spec conformance suite
// (every area on: pull, push, tags, referrers, deletes) through
// shared/conformance/run.sh.
func TestConformance(t *testing.T) {
	reg := needRegistry(t)
	script := sharedPath(t, "conformance/run.sh")
	ensureTool(t, "bash", "bash")

	report := t.TempDir()
	env := conformanceEnv("e2e/" + reg.RunID + "/conformance")
	// The first run builds the suite (cached in $HOME/.cache).
	r := runCmd(t, cmdOpts{Timeout: 20 * time.Minute, Env: env}, "bash", script, reg.URL, report)

	counts := lastLineWithPrefix(r.Stdout, "conformance:")
	if counts == "" {
		t.Fatalf("run.sh printed no counts line (%v); stderr:\n%s", r.Err, tail(r.Stderr, 40))
	}
	t.Log(counts)
	if !countsLine.MatchString(counts) {
		t.Errorf("unexpected counts line %q", counts)
	}
	if r.Err != nil {
		t.Errorf("conformance suite failed (%v): %s\nfailed checks:\n%s", r.Err, counts, failedChecks(filepath.Join(report, "conformance.log"), 300))
	}
}

// conformanceEnv is the environment of shared/conformance/run.sh: the
// repository prefix and which optional areas are on.
func conformanceEnv(prefix string) []string {
	env := []string{"OCI_CONFORMANCE_PREFIX=" + prefix,
		// The suite's optional workflows, on too. Only "sparse" manifests
		// stay off: kiln refuses a manifest whose blobs or children are not
		// in the repository (MANIFEST_BLOB_UNKNOWN), so a pull of anything
		// it accepted cannot fail.
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_BLOBS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_TAG_PARAM=true",
		"OCI_DATA_EMPTY_BLOB=true",
	}
	if os.Getenv("HOME") == "" && os.Getenv("XDG_CACHE_HOME") == "" && os.Getenv("OCI_CONFORMANCE_CACHE") == "" {
		env = append(env, "OCI_CONFORMANCE_CACHE="+filepath.Join(os.TempDir(), "oci-conformance-cache"))
	}
	return env
}

// failedChecks lists the failed leaf checks of the suite's result tree, each
// with its messages, at most max lines.
func failedChecks(logFile string, max int) string {
	b, err := os.ReadFile(logFile)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", logFile, err)
	}
	lines := strings.Split(string(b), "\n")
	var out []string
	isMsg := func(i int) bool { return i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "- ") }
	for i, l := range lines {
		if (strings.HasSuffix(l, ": FAIL") || strings.HasSuffix(l, ": Error")) && isMsg(i+1) {
			out = append(out, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "OCI Conformance Test/")))
			for j := i + 1; isMsg(j); j++ {
				out = append(out, "    "+strings.TrimSpace(lines[j]))
			}
		}
	}
	if len(out) > max {
		out = append(out[:max], fmt.Sprintf("[... %d more lines]", len(out)-max))
	}
	return strings.Join(out, "\n")
}
