package retention

import (
	"path"
	"strings"
	"time"
)

// Policy says what to delete in the repositories it matches.
type Policy struct {
	// Repositories is a pattern over repository names: path.Match per
	// "/"-separated component; a "**" component matches any number of
	// components (none included).
	Repositories string
	// Tags is a path.Match pattern over the tags the policy may delete;
	// "" means all. Tags it does not match are kept, and not counted by
	// KeepLast.
	Tags string
	// KeepLast keeps this many of the matching tags, the most recently
	// pushed; the others are deleted. 0: no limit.
	KeepLast int
	// MaxUnused deletes matching tags neither pushed nor pulled for this
	// long. 0: off.
	MaxUnused time.Duration
	// UntaggedAfter deletes manifests no kept tag reaches that were
	// neither pushed nor pulled for this long. 0: off.
	UntaggedAfter time.Duration
}

// policyFor returns the first policy matching repo, nil when none does.
func policyFor(policies []Policy, repo string) *Policy {
	for i := range policies {
		if matchRepository(policies[i].Repositories, repo) {
			return &policies[i]
		}
	}
	return nil
}

// matchTag reports whether the policy manages tag.
func (p *Policy) matchTag(tag string) bool {
	if p.Tags == "" {
		return true
	}
	ok, err := path.Match(p.Tags, tag)
	return ok && err == nil
}

// matchRepository matches a repository name against a pattern of
// path.Match components where "**" stands for any number of components.
func matchRepository(pattern, name string) bool {
	return matchParts(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchParts(pattern, name []string) bool {
	for len(pattern) > 0 {
		if pattern[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchParts(pattern[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pattern[0], name[0]); !ok || err != nil {
			return false
		}
		pattern, name = pattern[1:], name[1:]
	}
	return len(name) == 0
}
