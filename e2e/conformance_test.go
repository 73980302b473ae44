package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"kiln/internal/testbed"
)

// TestConformance runs the official OCI distribution-spec conformance suite
// (every area on: pull, push, tags, referrers, deletes).
func TestConformance(t *testing.T) {
	reg := needRegistry(t)
	runConformance(t, reg, "conformance", nil)
}

// conformanceOptional turns on the suite's optional workflows too. Only
// "sparse" manifests stay off: kiln refuses a manifest whose blobs or
// children are not in the repository (MANIFEST_BLOB_UNKNOWN), so a pull of
// anything it accepted cannot fail.
var conformanceOptional = []string{
	"OCI_API_BLOBS_UPLOAD_CANCEL=true",
	"OCI_API_BLOBS_DIGEST_HEADER=true",
	"OCI_API_MANIFESTS_DIGEST_HEADER=true",
	"OCI_API_MANIFESTS_TAG_PARAM=true",
	"OCI_DATA_EMPTY_BLOB=true",
}

// runConformance runs the suite against reg in repositories under
// e2e/RUN/name, with conformanceOptional and then extra (which wins) as its
// settings. It logs the suite's summary and counts and fails the test on
// any failed check.
func runConformance(t *testing.T, reg *registryEnv, name string, extra []string) {
	t.Helper()
	// The first run on a machine builds the suite (cached).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	opts := testbed.ConformanceOptions{
		RepoPrefix: "e2e/" + reg.RunID + "/" + name,
		Env:        append(append([]string{}, conformanceOptional...), extra...),
	}
	res, err := testbed.RunConformance(ctx, t.TempDir(), reg.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Summary)
	t.Log(res)
	if res.Failed > 0 || res.ExitErr != nil {
		t.Errorf("conformance suite failed (%v): %s\nfailed checks:\n%s", res.ExitErr, res, failureLines(res.Failures, 300))
	}
}

// failureLines lists failed checks, each with its messages indented under
// it, at most max lines.
func failureLines(failures []testbed.ConformanceFailure, max int) string {
	var lines []string
	for _, f := range failures {
		lines = append(lines, f.Check)
		for _, m := range f.Messages {
			lines = append(lines, "    "+strings.ReplaceAll(m, "\n", "\n      "))
		}
	}
	if len(lines) > max {
		lines = append(lines[:max], fmt.Sprintf("[... %d more lines]", len(lines)-max))
	}
	return strings.Join(lines, "\n")
}
