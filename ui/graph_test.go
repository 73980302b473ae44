package ui

import (
	"fmt"
	"strings"
	"testing"

	"kiln/buildhook"
	"kiln/storage"
)

// The example chain: base:1 (pushed) -> app -> app-tests, and an adopted
// image on base:1.
func chainRules() []Rule {
	return []Rule{
		{Name: "app", Bases: []string{"base:1"}, Tags: []string{"app:latest"}, Builder: "native"},
		{Name: "app-tests", Bases: []string{"app:latest"}, Tags: []string{"app-tests:latest"}, Builder: "native"},
		{Name: "auto:other:1", Bases: []string{"base:1"}, Tags: []string{"other:1"}, Builder: "rebase", Auto: true},
	}
}

func TestGraphPage(t *testing.T) {
	t.Parallel()
	recs := records(3, "app")
	recs[0].Status = buildhook.StatusFailed
	b := &fakeBuilds{rules: chainRules(), records: recs}
	code, body := get(t, newUI(storage.NewInMemory(storage.Options{}), b), "/ui/graph")
	if code != 200 {
		t.Fatalf("GET graph: %d", code)
	}
	if n := strings.Count(body, `class="edge"`); n != 3 {
		t.Errorf("%d edges, want 3 (base->app, app->app-tests, base->auto)", n)
	}
	mustContain(t, body, `data-name="base:1"`, `data-name="app"`, `data-name="app-tests"`, `data-name="auto:other:1"`,
		`class="node rule st-failed"`, "failed · ", "never built",
		`href="/ui/builds?rule=app"`, `href="/ui/builds?rule=auto%3Aother%3A1"`, `href="/ui/repo?name=base"`, `data-trigger="app-tests"`, "adopted")
}

func TestGraphLayout(t *testing.T) {
	t.Parallel()
	d := buildGraph(chainRules(), nil)
	x := map[string]int{}
	for _, n := range d.Nodes {
		x[n.Name] = n.X
	}
	if !(x["base:1"] < x["app"] && x["app"] < x["app-tests"] && x["base:1"] < x["auto:other:1"]) {
		t.Errorf("layers not base to derived, left to right: %v", x)
	}
	for _, n := range d.Nodes {
		if n.X+nodeWidth > d.Width || n.Y+nodeHeight > d.Height {
			t.Errorf("node %s at %d,%d outside %dx%d", n.Name, n.X, n.Y, d.Width, d.Height)
		}
	}
	for i, a := range d.Nodes {
		for _, b := range d.Nodes[i+1:] {
			if a.X == b.X && a.Y == b.Y {
				t.Errorf("%s and %s overlap", a.Name, b.Name)
			}
		}
	}
}

// manyRules is a forest of 100 rules: 10 chains of 10, each on its own base.
func manyRules() []Rule {
	var rules []Rule
	for c := range 10 {
		prev := fmt.Sprintf("base%d:1", c)
		for k := range 10 {
			tag := fmt.Sprintf("chain%d/img%d:latest", c, k)
			rules = append(rules, Rule{Name: fmt.Sprintf("chain%d-step%d", c, k), Bases: []string{prev}, Tags: []string{tag}})
			prev = tag
		}
	}
	return rules
}

func TestHostileRuleNames(t *testing.T) {
	t.Parallel()
	// Adopted images' rules carry repository names; labels are cut.
	rules := []Rule{{Name: `auto:<svg onload=alert(1)>:1`, Bases: []string{`"/><script>x</script>:1`}, Tags: []string{"a:1"}, Auto: true}}
	_, body := get(t, newUI(storage.NewInMemory(storage.Options{}), &fakeBuilds{rules: rules}), "/ui/graph")
	mustNotContain(t, body, "<svg onload", "<script>x")
	mustContain(t, body, "&lt;svg onload=alert(1)&gt;")
}
