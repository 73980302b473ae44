package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeBuildAPI answers the build API with two rules and their builds, and
// records the queries it was sent.
type fakeBuildAPI struct {
	mu      sync.Mutex
	queries []string
}

func (f *fakeBuildAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.queries = append(f.queries, r.URL.RequestURI())
	f.mu.Unlock()
	write := func(v any) { json.NewEncoder(w).Encode(v) }
	switch p := r.URL.Path; {
	case p == "/kiln/v1/rules":
		write([]map[string]any{
			{"name": "app", "bases": []string{"python:3.8"}, "tags": []string{"app:v1"}, "dependents": []string{"tests"}},
			{"name": "tests", "bases": []string{"app:v1"}, "tags": []string{"tests:v1"}},
		})
	case p == "/kiln/v1/builds" && r.URL.Query().Get("rule") == "app":
		write([]map[string]any{{"id": "b2", "rule": "app", "status": "running"}})
	case p == "/kiln/v1/builds" && r.URL.Query().Get("rule") == "tests":
		write([]map[string]any{})
	case p == "/kiln/v1/builds":
		write([]map[string]any{{"id": "b2", "rule": "app", "status": "running"}, {"id": "b1", "rule": "tests", "status": "failed"}})
	case p == "/kiln/v1/builds/b2/log":
		w.Write([]byte("step 1\nstep 2\n"))
	case strings.HasPrefix(p, "/kiln/v1/builds/"):
		w.WriteHeader(http.StatusNotFound)
		write(map[string]string{"error": "no such build"})
	case strings.HasSuffix(p, "/trigger"):
		w.WriteHeader(http.StatusNotFound)
		write(map[string]string{"error": "no such rule"})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func runBuilds(t *testing.T, server string, args ...string) (string, error) {
	t.Helper()
	cmd := newBuildsCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append(args, "--server", server))
	err := cmd.Execute()
	return out.String(), err
}

func TestBuildsCLIRefusesUnknownNamesAndFollowsRules(t *testing.T) {
	t.Parallel()
	api := &fakeBuildAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()

	for _, tc := range []struct {
		args []string
		want []string // all in the error
	}{
		{[]string{"ls", "--status", "bogus"}, []string{`"bogus"`, "queued", "running", "succeeded", "failed"}},
		{[]string{"ls", "--rule", "nonexist"}, []string{`"nonexist"`, "app", "tests"}},
		{[]string{"trigger", "nope"}, []string{`"nope"`, "app", "tests"}},
		{[]string{"logs", "nothing"}, []string{`"nothing"`, "app", "tests"}},
		{[]string{"ls", "--limit", "0"}, []string{"--limit"}},
	} {
		_, err := runBuilds(t, srv.URL, tc.args...)
		if err == nil {
			t.Errorf("kiln builds %v: no error", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("kiln builds %v: %v, want it to mention %s", tc.args, err, w)
			}
		}
	}

	out, err := runBuilds(t, srv.URL, "ls", "--limit", "1")
	if err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	last := api.queries[len(api.queries)-1]
	api.mu.Unlock()
	if !strings.Contains(last, "limit=1") {
		t.Errorf("ls --limit 1 asked %s", last)
	}
	if !strings.Contains(out, "b2") {
		t.Errorf("ls output: %s", out)
	}

	// A rule's name follows that rule's latest build.
	out, err = runBuilds(t, srv.URL, "logs", "app")
	if err != nil || out != "step 1\nstep 2\n" {
		t.Errorf("logs app: %q, %v", out, err)
	}
}

func TestBuildsGraph(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(&fakeBuildAPI{})
	defer srv.Close()
	out, err := runBuilds(t, srv.URL, "graph")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("graph:\n%s", out)
	}
	for i, want := range [][]string{
		{"RULE", "BUILT ON", "LAST BUILD"},
		{"app", "python:3.8", "app:v1", "tests", "running", "(b2)"},
		{"tests", "app:v1", "tests:v1", "never"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("graph line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
}
