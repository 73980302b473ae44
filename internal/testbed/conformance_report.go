package testbed

import (
	"regexp"
	"strconv"
	"strings"
)

// conformanceReport is what the suite printed on its standard output: a
// tree of results, then a summary with its counters.
type conformanceReport struct {
	counts   map[string]int // Pass, FAIL, Error, Skip, Disabled
	summary  string         // from "OCI Conformance Result:" on
	failures []ConformanceFailure
}

var (
	// resultNode is a line of the tree: two spaces per level, the check's
	// name and its status.
	resultNode = regexp.MustCompile(`^((?:  )*)(.+): (Pass|FAIL|Error|Skip|Disabled|Unknown)$`)
	// resultCounter is a counter line of the summary.
	resultCounter = regexp.MustCompile(`^  (Disabled|Skip|Pass|FAIL|Error)\.+: +(\d+)$`)
)

// parseConformanceReport reads the suite's output; counts is nil when it
// holds no summary (the suite did not get that far).
func parseConformanceReport(out string) conformanceReport {
	var rep conformanceReport
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "OCI Conformance Result:") {
			rep.counts = parseCounters(lines[i+1:])
			rep.summary = strings.TrimSpace(strings.Join(lines[i:], "\n"))
			break
		}
	}
	rep.failures = failedChecks(lines)
	return rep
}

func parseCounters(lines []string) map[string]int {
	counts := map[string]int{}
	for _, l := range lines {
		if strings.HasPrefix(l, "  Total") {
			break
		}
		if m := resultCounter.FindStringSubmatch(l); m != nil {
			counts[m[1]], _ = strconv.Atoi(m[2])
		}
	}
	return counts
}

// failedChecks walks the result tree after "Test results" and lists the
// checks that failed, leaves only: a failed group just says that one of
// its checks failed. A check's name in the tree is its path from the root.
func failedChecks(lines []string) []ConformanceFailure {
	var (
		failures  []ConformanceFailure
		root      string // the root's name, which starts every other name
		lastDepth int    // depth of failures' last entry
		current   bool   // messages belong to failures' last entry
		inTree    bool
	)
	for _, l := range lines {
		if !inTree {
			inTree = l == "Test results"
			continue
		}
		if l == "" {
			break
		}
		if m := resultNode.FindStringSubmatch(l); m != nil {
			depth, name := len(m[1])/2, m[2]
			if depth == 0 {
				root = name
			}
			if current && depth > lastDepth {
				failures = failures[:len(failures)-1] // it was a group
			}
			current = depth > 0 && (m[3] == "FAIL" || m[3] == "Error")
			if current {
				failures = append(failures, ConformanceFailure{Check: strings.TrimPrefix(name, root+"/")})
				lastDepth = depth
			}
			continue
		}
		if !current {
			continue
		}
		f := &failures[len(failures)-1]
		msg := strings.TrimSpace(l)
		if rest, ok := strings.CutPrefix(msg, "- "); ok {
			f.Messages = append(f.Messages, rest)
		} else if n := len(f.Messages); n > 0 {
			f.Messages[n-1] += "\n" + msg // a message of several lines
		}
	}
	return failures
}
