package buildhook

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"kiln/buildhook/build"
)

// Graph is the build rules with their bases: base ImageRef -> the rules
// built on it, and rule -> the rules whose tags it builds on. It is
// immutable once built and safe for concurrent use.
type Graph struct {
	rules      []*build.Rule
	byName     map[string]int // rule name -> config index
	producer   map[build.ImageRef]int
	dependents map[build.ImageRef][]int // base -> rules built on it, config order
	upstream   [][]int                  // rule -> rules whose tags it builds on, config order
	children   [][]int                  // rule -> rules built on its tags, config order
	ancestors  [][]int                  // rule -> every rule it transitively builds on, config order
	topo       []int                    // position of each rule in a topological order
	watched    []build.ImageRef
}

// NewGraph indexes rules: base ImageRef -> rules built on it; rule -> the
// rules whose Tags it builds on (a rule's Tags feed another rule's Bases).
// Errors: a cycle, named ("build rules form a cycle: a -> b -> a"); two
// rules producing the same tag; a rule whose Tags include one of its own
// Bases; a nil, unnamed or duplicate rule.
func NewGraph(rules []*build.Rule) (*Graph, error) {
	n := len(rules)
	g := &Graph{
		rules:      slices.Clone(rules),
		byName:     make(map[string]int, n),
		producer:   map[build.ImageRef]int{},
		dependents: map[build.ImageRef][]int{},
		upstream:   make([][]int, n),
		children:   make([][]int, n),
		ancestors:  make([][]int, n),
		topo:       make([]int, n),
	}
	for i, r := range rules {
		if r == nil {
			return nil, fmt.Errorf("build rule %d is nil", i)
		}
		if r.Name == "" {
			return nil, fmt.Errorf("build rule %d has no name", i)
		}
		if _, dup := g.byName[r.Name]; dup {
			return nil, fmt.Errorf("two build rules are named %q", r.Name)
		}
		g.byName[r.Name] = i
		for _, t := range r.Tags {
			if j, dup := g.producer[t]; dup {
				if j == i {
					continue // listed twice in one rule
				}
				return nil, fmt.Errorf("build rules %s and %s both produce %s", rules[j].Name, r.Name, t)
			}
			g.producer[t] = i
		}
	}
	seenWatched := map[build.ImageRef]bool{}
	for i, r := range rules {
		seen := map[build.ImageRef]bool{}
		for _, b := range r.Bases {
			if seen[b] {
				continue
			}
			seen[b] = true
			if slices.Contains(r.Tags, b) {
				return nil, fmt.Errorf("build rule %s builds on its own tag %s", r.Name, b)
			}
			g.dependents[b] = append(g.dependents[b], i)
			if !seenWatched[b] {
				seenWatched[b] = true
				g.watched = append(g.watched, b)
			}
			if p, ok := g.producer[b]; ok && !slices.Contains(g.upstream[i], p) {
				g.upstream[i] = append(g.upstream[i], p)
				g.children[p] = append(g.children[p], i)
			}
		}
	}
	for i := range rules {
		slices.Sort(g.upstream[i])
		slices.Sort(g.children[i])
	}
	if err := g.checkCycles(); err != nil {
		return nil, err
	}
	g.sortTopo()
	for i := range rules {
		g.ancestors[i] = g.closure(g.upstream, []int{i})
	}
	return g, nil
}

// checkCycles finds a cycle by depth-first search in config order and
// names it.
func (g *Graph) checkCycles() error {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(g.rules))
	var stack []int
	var cycle []int
	var visit func(i int) bool
	visit = func(i int) bool {
		color[i] = grey
		stack = append(stack, i)
		for _, c := range g.children[i] {
			switch color[c] {
			case grey:
				start := slices.Index(stack, c)
				cycle = append(slices.Clone(stack[start:]), c)
				return true
			case white:
				if visit(c) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		return false
	}
	for i := range g.rules {
		if color[i] == white && visit(i) {
			names := make([]string, len(cycle))
			for k, c := range cycle {
				names[k] = g.rules[c].Name
			}
			return errors.New("build rules form a cycle: " + strings.Join(names, " -> "))
		}
	}
	return nil
}

// sortTopo orders the rules so every rule comes after the rules it builds
// on, earlier config first among the ready ones (Kahn's algorithm).
func (g *Graph) sortTopo() {
	n := len(g.rules)
	indeg := make([]int, n)
	for i := range n {
		indeg[i] = len(g.upstream[i])
	}
	var ready []int
	for i := range n {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	for pos := 0; len(ready) > 0; pos++ {
		// smallest config index first
		k := 0
		for j := range ready {
			if ready[j] < ready[k] {
				k = j
			}
		}
		i := ready[k]
		ready = slices.Delete(ready, k, k+1)
		g.topo[i] = pos
		for _, c := range g.children[i] {
			indeg[c]--
			if indeg[c] == 0 {
				ready = append(ready, c)
			}
		}
	}
}

// closure is every rule reachable from seeds along edges (seeds excluded
// unless reachable), in config order.
func (g *Graph) closure(edges [][]int, seeds []int) []int {
	seen := make([]bool, len(g.rules))
	stack := slices.Clone(seeds)
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range edges[i] {
			if !seen[c] {
				seen[c] = true
				stack = append(stack, c)
			}
		}
	}
	var out []int
	for i, s := range seen {
		if s {
			out = append(out, i)
		}
	}
	return out
}

func (g *Graph) list(idx []int) []*build.Rule {
	if len(idx) == 0 {
		return nil
	}
	out := make([]*build.Rule, len(idx))
	for k, i := range idx {
		out[k] = g.rules[i]
	}
	return out
}

func (g *Graph) index(r *build.Rule) (int, bool) {
	if r == nil {
		return 0, false
	}
	i, ok := g.byName[r.Name]
	return i, ok
}

// Rules returns the rules in config order.
func (g *Graph) Rules() []*build.Rule { return slices.Clone(g.rules) }

// Rule returns the rule named name, or nil.
func (g *Graph) Rule(name string) *build.Rule {
	if i, ok := g.byName[name]; ok {
		return g.rules[i]
	}
	return nil
}

// Producer returns the rule whose Tags include ref, or nil.
func (g *Graph) Producer(ref build.ImageRef) *build.Rule {
	if i, ok := g.producer[ref]; ok {
		return g.rules[i]
	}
	return nil
}

// Dependents returns the rules directly built on ref, in config order.
func (g *Graph) Dependents(ref build.ImageRef) []*build.Rule { return g.list(g.dependents[ref]) }

// Downstream returns every rule a move of ref affects: the rules built on
// it, the rules built on their tags, and so on, in topological order (a
// rule after every rule it builds on; config order among independent
// ones).
func (g *Graph) Downstream(ref build.ImageRef) []*build.Rule {
	seeds := g.dependents[ref]
	if len(seeds) == 0 {
		return nil
	}
	set := g.closure(g.children, seeds)
	for _, s := range seeds {
		if !slices.Contains(set, s) {
			set = append(set, s)
		}
	}
	g.sortByTopo(set)
	return g.list(set)
}

func (g *Graph) sortByTopo(idx []int) {
	slices.SortFunc(idx, func(a, b int) int { return g.topo[a] - g.topo[b] })
}

// Upstream returns the rules whose tags r builds on directly, in config
// order.
func (g *Graph) Upstream(r *build.Rule) []*build.Rule {
	i, ok := g.index(r)
	if !ok {
		return nil
	}
	return g.list(g.upstream[i])
}

// Ancestors returns every rule r builds on, directly or through other
// rules, in topological order.
func (g *Graph) Ancestors(r *build.Rule) []*build.Rule {
	i, ok := g.index(r)
	if !ok {
		return nil
	}
	idx := slices.Clone(g.ancestors[i])
	g.sortByTopo(idx)
	return g.list(idx)
}

// Watched returns every base the rules watch, without duplicates, in
// order of first appearance in the config.
func (g *Graph) Watched() []build.ImageRef { return slices.Clone(g.watched) }

// triggered returns the rules a move of ref queues, by index: those built
// on ref, less those that also build on another rule the same move
// affects, which that rule's push triggers, so that each level of a
// cascade builds once.
func (g *Graph) triggered(ref build.ImageRef) []int {
	deps := g.dependents[ref]
	if len(deps) == 0 {
		return nil
	}
	affected := make([]bool, len(g.rules))
	for _, i := range deps {
		affected[i] = true
	}
	for _, i := range g.closure(g.children, deps) {
		affected[i] = true
	}
	var out []int
	for _, i := range deps {
		if !slices.ContainsFunc(g.upstream[i], func(u int) bool { return affected[u] }) {
			out = append(out, i)
		}
	}
	return out
}
