package buildhook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kiln/config"
)

// A FROM that names no image kiln can watch is reported with why, so a
// rule that silently watches nothing cannot happen.
func TestRuleReportsUnwatchedBases(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dockerfile := "ARG REGISTRY=localhost:5000\n" +
		"FROM $REGISTRY/python:3.8 AS py\n" +
		"FROM 127.0.0.1:5600/tools:1 AS tools\n" +
		"FROM python:3.9 AS hub\n" +
		"FROM ghcr.io/o/img:1 AS other\n" +
		"FROM scratch\n" +
		"COPY --from=py /a /a\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	rules, err := LoadRules([]config.Build{{Name: "app", Context: dir, Dockerfile: "Dockerfile", Tags: []string{"app:v1"}, Builder: "auto", Strategy: "build", Network: "none"}},
		"/", []string{"127.0.0.1:5600", "localhost:5600"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rules[0]
	if len(r.Bases) != 1 || r.Bases[0].String() != "tools:1" {
		t.Errorf("bases %v, want [tools:1]", r.Bases)
	}
	got := map[string]string{}
	for _, u := range r.Unwatched {
		got[u.Name] = u.Why
	}
	for name, want := range map[string]string{
		"localhost:5000/python:3.8": "listens on 5600",
		"python:3.9":                "docker.io is not mirrored",
		"ghcr.io/o/img:1":           "neither this registry nor a mirrored upstream",
	} {
		if !strings.Contains(got[name], want) {
			t.Errorf("unwatched %s: %q, want it to say %q (all: %v)", name, got[name], want, got)
		}
	}
	if _, ok := got["scratch"]; ok || len(got) != 3 {
		t.Errorf("unwatched %v, want exactly the three names above", got)
	}
}
