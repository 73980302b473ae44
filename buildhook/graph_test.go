package buildhook

import (
	"reflect"
	"strings"
	"testing"

	"kiln/buildhook/build"
)

// ref parses "repo:tag" for tests.
func ref(s string) build.ImageRef {
	i := strings.LastIndex(s, ":")
	return build.ImageRef{Repo: s[:i], Tag: s[i+1:]}
}

// rule makes a test rule: name, the tags it produces, the bases it builds on.
func rule(name string, tags []string, bases ...string) *build.Rule {
	r := &build.Rule{Name: name}
	for _, t := range tags {
		r.Tags = append(r.Tags, ref(t))
	}
	for _, b := range bases {
		r.Bases = append(r.Bases, ref(b))
	}
	return r
}

func names(rules []*build.Rule) []string {
	out := []string{}
	for _, r := range rules {
		out = append(out, r.Name)
	}
	return out
}

func TestNewGraphErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		rules []*build.Rule
		want  string
	}{
		{
			name: "two-rule cycle",
			rules: []*build.Rule{
				rule("a", []string{"a:1"}, "b:1"),
				rule("b", []string{"b:1"}, "a:1"),
			},
			want: "build rules form a cycle: a -> b -> a",
		},
		{
			name: "three-rule cycle behind an acyclic rule",
			rules: []*build.Rule{
				rule("base", []string{"base:1"}, "python:3.8"),
				rule("x", []string{"x:1"}, "base:1", "z:1"),
				rule("y", []string{"y:1"}, "x:1"),
				rule("z", []string{"z:1"}, "y:1"),
			},
			want: "build rules form a cycle: x -> y -> z -> x",
		},
		{
			name: "duplicate tag",
			rules: []*build.Rule{
				rule("a", []string{"app:1", "app:latest"}, "python:3.8"),
				rule("b", []string{"app:latest"}, "python:3.9"),
			},
			want: "build rules a and b both produce app:latest",
		},
		{
			name:  "rule builds on its own tag",
			rules: []*build.Rule{rule("a", []string{"app:1", "app:2"}, "python:3.8", "app:2")},
			want:  "build rule a builds on its own tag app:2",
		},
		{
			name:  "duplicate rule name",
			rules: []*build.Rule{rule("a", []string{"a:1"}), rule("a", []string{"b:1"})},
			want:  `two build rules are named "a"`,
		},
		{
			name:  "nil rule",
			rules: []*build.Rule{nil},
			want:  "build rule 0 is nil",
		},
		{
			name:  "unnamed rule",
			rules: []*build.Rule{rule("", []string{"a:1"})},
			want:  "build rule 0 has no name",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGraph(tt.rules)
			if err == nil {
				t.Fatalf("no error; graph %+v", g)
			}
			if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
		})
	}
}

// chainRules is python:3.8 -> flask-app:v1.0 -> flask-tests:v1.0 where
// flask-tests is also FROM python:3.8 (multi-stage), plus unrelated and
// diamond rules.
func chainRules() []*build.Rule {
	return []*build.Rule{
		rule("flask-tests", []string{"flask-tests:v1.0"}, "python:3.8", "flask-app:v1.0"),
		rule("other", []string{"other:1"}, "alpine:3"),
		rule("flask-app", []string{"flask-app:v1.0", "flask-app:latest"}, "python:3.8"),
		rule("worker", []string{"worker:1"}, "python:3.8"),
		rule("bundle", []string{"bundle:1"}, "worker:1", "flask-app:latest", "alpine:3"),
		rule("lonely", []string{"lonely:1"}),
	}
}

func TestGraph(t *testing.T) {
	t.Parallel()
	g, err := NewGraph(chainRules())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(g.Rules()), []string{"flask-tests", "other", "flask-app", "worker", "bundle", "lonely"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Rules = %v, want %v", got, want)
	}
	if r := g.Rule("flask-app"); r == nil || r.Name != "flask-app" {
		t.Errorf("Rule(flask-app) = %v", r)
	}
	if r := g.Rule("nope"); r != nil {
		t.Errorf("Rule(nope) = %v", r)
	}
	if r := g.Producer(ref("flask-app:latest")); r == nil || r.Name != "flask-app" {
		t.Errorf("Producer(flask-app:latest) = %v", r)
	}
	if r := g.Producer(ref("python:3.8")); r != nil {
		t.Errorf("Producer(python:3.8) = %v", r)
	}

	tests := []struct {
		ref                    string
		dependents, downstream []string
	}{
		{"python:3.8", []string{"flask-tests", "flask-app", "worker"}, []string{"flask-app", "flask-tests", "worker", "bundle"}},
		{"flask-app:v1.0", []string{"flask-tests"}, []string{"flask-tests"}},
		{"flask-app:latest", []string{"bundle"}, []string{"bundle"}},
		{"alpine:3", []string{"other", "bundle"}, []string{"other", "bundle"}},
		{"worker:1", []string{"bundle"}, []string{"bundle"}},
		{"bundle:1", []string{}, []string{}},
		{"python:3.9", []string{}, []string{}},
	}
	for _, tt := range tests {
		if got := names(g.Dependents(ref(tt.ref))); !reflect.DeepEqual(got, tt.dependents) {
			t.Errorf("Dependents(%s) = %v, want %v", tt.ref, got, tt.dependents)
		}
		if got := names(g.Downstream(ref(tt.ref))); !reflect.DeepEqual(got, tt.downstream) {
			t.Errorf("Downstream(%s) = %v, want %v", tt.ref, got, tt.downstream)
		}
	}

	if got, want := names(g.Upstream(g.Rule("bundle"))), []string{"flask-app", "worker"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Upstream(bundle) = %v, want %v", got, want)
	}
	if got := names(g.Upstream(g.Rule("flask-app"))); len(got) != 0 {
		t.Errorf("Upstream(flask-app) = %v, want none", got)
	}
	if got, want := names(g.Ancestors(g.Rule("flask-tests"))), []string{"flask-app"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Ancestors(flask-tests) = %v, want %v", got, want)
	}

	want := []build.ImageRef{ref("python:3.8"), ref("flask-app:v1.0"), ref("alpine:3"), ref("worker:1"), ref("flask-app:latest")}
	if got := g.Watched(); !reflect.DeepEqual(got, want) {
		t.Errorf("Watched = %v, want %v", got, want)
	}
}

func TestGraphDownstreamTopological(t *testing.T) {
	t.Parallel()
	// Config order deliberately reversed: d <- c <- b <- a <- base:1, plus
	// d also on a directly.
	g, err := NewGraph([]*build.Rule{
		rule("d", []string{"d:1"}, "c:1", "a:1"),
		rule("c", []string{"c:1"}, "b:1"),
		rule("b", []string{"b:1"}, "a:1"),
		rule("a", []string{"a:1"}, "base:1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(g.Downstream(ref("base:1"))), []string{"a", "b", "c", "d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Downstream(base:1) = %v, want %v", got, want)
	}
	if got, want := names(g.Downstream(ref("a:1"))), []string{"b", "c", "d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Downstream(a:1) = %v, want %v", got, want)
	}
	if got, want := names(g.Ancestors(g.Rule("d"))), []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Ancestors(d) = %v, want %v", got, want)
	}
}

func TestGraphEmpty(t *testing.T) {
	t.Parallel()
	g, err := NewGraph(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Rules()) != 0 || len(g.Watched()) != 0 || len(g.Downstream(ref("x:1"))) != 0 {
		t.Error("empty graph is not empty")
	}
}
