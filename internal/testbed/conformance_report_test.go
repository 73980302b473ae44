package testbed

import (
	"reflect"
	"testing"
)

// sampleConformanceOutput is shaped as the pinned suite prints (its
// runner.Report): the result tree, each check named by its path and its
// messages (errors.Join'ed, so one may span lines) after a " - ", then the
// configuration and the summary.
const sampleConformanceOutput = `Test results
OCI Conformance Test: FAIL
  OCI Conformance Test/ping: Pass
  OCI Conformance Test/sha256 blobs: FAIL
    OCI Conformance Test/sha256 blobs/mount: FAIL
      OCI Conformance Test/sha256 blobs/mount/blob-post-put: Pass
      OCI Conformance Test/sha256 blobs/mount/blob-mount: FAIL
       - unexpected status code, expected one of [201], received 202
missing header "Location"
       - digest mismatch
    OCI Conformance Test/sha256 blobs/empty: Pass
  OCI Conformance Test/sha512 blobs: Skip
  OCI Conformance Test/referrers: Error
   - failed to list referrers: connection reset
  OCI Conformance Test/tags: FAIL

Configuration:
  registry: 127.0.0.1:5000
  resultsDir: /tmp/x

OCI Conformance Result: FAIL
  Disabled......................:          2
  Skip..........................:          3
  Pass..........................:        120
  FAIL..........................:          2
  Error.........................:          1
  Total.........................:        128

API conformance:
  ping..........................:       Pass
`

func TestParseConformanceReport(t *testing.T) {
	rep := parseConformanceReport(sampleConformanceOutput)
	wantCounts := map[string]int{"Disabled": 2, "Skip": 3, "Pass": 120, "FAIL": 2, "Error": 1}
	if !reflect.DeepEqual(rep.counts, wantCounts) {
		t.Errorf("counts = %v, want %v", rep.counts, wantCounts)
	}
	wantFailures := []ConformanceFailure{
		{Check: "sha256 blobs/mount/blob-mount", Messages: []string{
			"unexpected status code, expected one of [201], received 202\nmissing header \"Location\"", "digest mismatch"}},
		{Check: "referrers", Messages: []string{"failed to list referrers: connection reset"}},
		{Check: "tags"},
	}
	if !reflect.DeepEqual(rep.failures, wantFailures) {
		t.Errorf("failures =\n%#v\nwant\n%#v", rep.failures, wantFailures)
	}
	if want := "OCI Conformance Result: FAIL"; len(rep.summary) < len(want) || rep.summary[:len(want)] != want {
		t.Errorf("summary starts %q, want %q", rep.summary, want)
	}
}

func TestParseConformanceReportWithoutSummary(t *testing.T) {
	rep := parseConformanceReport("Test results\nOCI Conformance Test: Unknown\n")
	if rep.counts != nil {
		t.Errorf("counts = %v for output without a summary, want nil", rep.counts)
	}
}

func TestConformanceTarget(t *testing.T) {
	for _, tc := range []struct{ url, registry, tls string }{
		{"http://127.0.0.1:5000", "127.0.0.1:5000", "disabled"},
		{"http://127.0.0.1:5000/v2/", "127.0.0.1:5000", "disabled"},
		{"https://localhost:8443/", "localhost:8443", "enabled"},
	} {
		registry, tls, err := conformanceTarget(tc.url)
		if err != nil || registry != tc.registry || tls != tc.tls {
			t.Errorf("conformanceTarget(%q) = %q, %q, %v; want %q, %q", tc.url, registry, tls, err, tc.registry, tc.tls)
		}
	}
	for _, url := range []string{"127.0.0.1:5000", "ftp://host", "http://", "http:///v2"} {
		if _, _, err := conformanceTarget(url); err == nil {
			t.Errorf("conformanceTarget(%q) accepted it", url)
		}
	}
}
