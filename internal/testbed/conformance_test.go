package testbed

import (
	"context"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunConformanceReportsFailures runs the real suite against a
// "registry" that only answers /v2/: checks fail, and what RunConformance
// reports agrees with the suite's own junit.xml.
func TestRunConformanceReportsFailures(t *testing.T) {
	needTools(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir := t.TempDir()
	res, err := RunConformance(ctx, dir, srv.URL, ConformanceOptions{RepoPrefix: "testbed"})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Failed == 0 || res.ExitErr == nil {
		t.Errorf("%s, exit %v: want failures and a failed exit", res, res.ExitErr)
	}
	withMessages := 0
	for _, f := range res.Failures {
		if f.Check == "" || strings.HasPrefix(f.Check, "OCI Conformance Test") {
			t.Errorf("failure not named by its path below the root: %+v", f)
		}
		if len(f.Messages) > 0 {
			withMessages++
		}
	}
	if withMessages == 0 {
		t.Errorf("no failure says why: %+v", res.Failures)
	}

	b, err := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var junit struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Skipped  int `xml:"skipped,attr"`
		Disabled int `xml:"disabled,attr"`
	}
	if err := xml.Unmarshal(b, &junit); err != nil {
		t.Fatal(err)
	}
	if res.Failed != junit.Failures+junit.Errors || res.Skipped != junit.Skipped+junit.Disabled ||
		res.Passed+res.Failed+res.Skipped != junit.Tests {
		t.Errorf("%s; junit.xml says %+v", res, junit)
	}
}
