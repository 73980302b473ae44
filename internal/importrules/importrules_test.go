package importrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// rule says what the packages under from may import, directly or through
// other packages: nothing under any of never, none of the packages
// neverPkg names (the packages below them are allowed), and when only is
// not nil, no kiln package outside from and only (an empty only: no kiln
// package).
type rule struct {
	from     string
	never    []string
	neverPkg []string
	only     []string
	why      string
}

var rules = []rule{
	{from: "kiln/distspec", only: []string{}, why: "the API error leaf is shared by everyone, so it imports no one"},
	{from: "kiln/storage", only: []string{"kiln/distspec"}, why: "storage is the bottom layer: it knows no handler, builder or config"},
	{from: "kiln/registry", never: []string{"kiln/buildhook"}, why: "the registry serves builds' pushes over HTTP, it does not call them"},
	{from: "kiln/registry", never: []string{"kiln/ui"}, why: "the pages sit beside the registry, on the store; the registry does not serve them"},
	{from: "kiln/ui", never: []string{"kiln/registry", "kiln/cmd"}, why: "the pages read the store and the build service through their own small interfaces, not the registry's handlers"},
	{from: "kiln/buildhook", never: []string{"kiln/registry"}, why: "builds reach the registry over HTTP and the store through storage"},
	{from: "kiln/blobs", never: []string{"kiln/registry"}, why: "the registry uses blobs, not the other way round"},
	{from: "kiln/buildhook/native", neverPkg: []string{"kiln/buildhook"}, why: "the native builder knows the build contract (buildhook/build), not the orchestration that runs it"},
	{from: "kiln/buildhook/dockerfile", neverPkg: []string{"kiln/buildhook"}, never: []string{"kiln/buildhook/native"}, why: "the Dockerfile front end serves the orchestration and the builders, it calls neither"},
	{from: "kiln/buildhook/build", neverPkg: []string{"kiln/buildhook"}, never: []string{"kiln/buildhook/native", "kiln/buildhook/dockerfile", "kiln/buildhook/rebase"}, why: "the shared contract is the bottom of buildhook: everyone imports it, it imports none of them"},
	{from: "kiln/buildhook/rebase", neverPkg: []string{"kiln/buildhook"}, never: []string{"kiln/buildhook/native", "kiln/buildhook/dockerfile"}, why: "the rebase engine knows the builders' contract, not buildhook, which calls it"},
}

// testOnly are packages of helpers for tests: only test files import them,
// so that no test fixture ends up in a binary.
var testOnly = []string{"kiln/internal/imagetest"}

func TestImportRules(t *testing.T) {
	pkgs := modulePackages(t)
	for _, only := range testOnly {
		if _, ok := pkgs[only]; !ok {
			t.Errorf("no package %s: update testOnly", only)
		}
		for path, p := range pkgs {
			if path != only && slices.Contains(p.Deps, only) {
				t.Errorf("%s imports %s (%s): only tests may", path, only, strings.Join(importChain(pkgs, path, only), " -> "))
			}
		}
	}
	for _, r := range rules {
		checked := false
		for path, p := range pkgs {
			if !under(path, r.from) {
				continue
			}
			checked = true
			for _, dep := range p.Deps {
				if !under(dep, "kiln") || under(dep, r.from) {
					continue
				}
				if broken(r, dep) {
					t.Errorf("%s imports %s (%s): %s", path, dep, strings.Join(importChain(pkgs, path, dep), " -> "), r.why)
				}
			}
		}
		// A renamed package must not turn its rule into nothing to check.
		if !checked {
			t.Errorf("no package under %s: update the rule", r.from)
		}
		for _, p := range slices.Concat(r.never, r.neverPkg, r.only) {
			if !slices.ContainsFunc(slices.Collect(maps.Keys(pkgs)), func(path string) bool { return under(path, p) }) {
				t.Errorf("no package under %s: update the rule on %s", p, r.from)
			}
		}
	}
}

func broken(r rule, dep string) bool {
	if slices.ContainsFunc(r.never, func(p string) bool { return under(dep, p) }) || slices.Contains(r.neverPkg, dep) {
		return true
	}
	return r.only != nil && !slices.ContainsFunc(r.only, func(p string) bool { return under(dep, p) })
}

// under reports whether path is the package prefix or one below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// modulePackages lists every package of the module (test files aside) with
// its direct imports and all its dependencies, as `go list` sees them.
func modulePackages(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "kiln/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	pkgs := map[string]pkg{}
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

// importChain finds one chain of direct imports from one package to
// another, so that a failure says which import to remove.
func importChain(pkgs map[string]pkg, from, to string) []string {
	previous := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var chain []string
			for ; p != ""; p = previous[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return chain
		}
		for _, next := range pkgs[p].Imports {
			if _, seen := previous[next]; !seen {
				previous[next] = p
				queue = append(queue, next)
			}
		}
	}
	return []string{from, "?", to}
}

// storageDrivers is where distribution's storage drivers live.
const storageDrivers = "github.com/distribution/distribution/v3/registry/storage/driver"

// Only storage talks to a storage driver: everyone else goes through
// storage.Store, whose methods keep the store's layout and its guarantees.
func TestOnlyStorageImportsDrivers(t *testing.T) {
	pkgs := modulePackages(t)
	if !slices.ContainsFunc(pkgs["kiln/storage"].Imports, func(p string) bool { return under(p, storageDrivers) }) {
		t.Fatalf("kiln/storage imports no package under %s: update this test", storageDrivers)
	}
	for path, p := range pkgs {
		if under(path, "kiln/storage") {
			continue
		}
		for _, imp := range p.Imports {
			if under(imp, storageDrivers) {
				t.Errorf("%s imports %s: only kiln/storage may use a storage driver", path, imp)
			}
		}
	}
}
