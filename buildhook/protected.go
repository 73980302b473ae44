package buildhook

import (
	"slices"
	"strings"

	"kiln/buildhook/build"
)

// ProtectedTags returns the tags retention must never delete, sorted: every
// tag a rule produces and every base a rule is built FROM, the rules of
// adopted images (their image and its base) included.
func (s *Service) ProtectedTags() []build.ImageRef { return s.RuleGraph().ProtectedTags() }

// ProtectedTags returns the tags g's rules produce or build on, sorted.
func (g *Graph) ProtectedTags() []build.ImageRef {
	seen := map[build.ImageRef]bool{}
	var out []build.ImageRef
	for _, r := range g.rules {
		for _, ref := range slices.Concat(r.Tags, r.Bases) {
			if !seen[ref] {
				seen[ref] = true
				out = append(out, ref)
			}
		}
	}
	slices.SortFunc(out, func(a, b build.ImageRef) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// IsStagingTag reports whether tag is one builders push to before a build
// moves the rule's tags: it belongs to a build running now.
func IsStagingTag(tag string) bool { return strings.HasPrefix(tag, stagingTagPrefix) }
