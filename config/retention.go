package config

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// Retention configures the retention policies of pushed repositories
// (pull-through mirror repositories are never touched).
type Retention struct {
	// Interval is how often the policies run; 0 means only on demand.
	Interval time.Duration     `yaml:"interval"`
	Policies []RetentionPolicy `yaml:"policies"`
}

// RetentionPolicy says what to delete in the repositories it matches. A
// repository is governed by the first policy matching its name.
type RetentionPolicy struct {
	// Repositories is a pattern over repository names: path.Match per
	// "/"-separated component, and a "**" component matches any number
	// of components.
	Repositories string `yaml:"repositories"`
	// Tags limits the tags the policy deletes (path.Match over the tag);
	// "" means every tag. Other tags are kept.
	Tags          string        `yaml:"tags"`
	KeepLast      int           `yaml:"keep_last"`      // keep this many most recently pushed tags; 0: no limit
	MaxUnused     time.Duration `yaml:"max_unused"`     // delete tags neither pushed nor pulled for this long; 0: off
	UntaggedAfter time.Duration `yaml:"untagged_after"` // delete untagged manifests neither pushed nor pulled for this long; 0: off
}

// MinUntaggedAfter bounds untagged_after from below: an image index's
// children are pushed, untagged, just before the index that reaches
// them, and a multi-arch push must not lose them in between.
const MinUntaggedAfter = 10 * time.Minute

func (c *Config) validateRetention(bad func(key, format string, args ...any)) {
	r := c.Retention
	if r.Interval < 0 {
		bad("retention.interval", "must not be negative")
	}
	for i, p := range r.Policies {
		key := fmt.Sprintf("retention.policies[%d]", i)
		if p.Repositories == "" {
			bad(key+".repositories", "must be set (use \"**\" for every repository)")
		} else if err := CheckRepositoryPattern(p.Repositories); err != nil {
			bad(key+".repositories", "%v", err)
		}
		if _, err := path.Match(p.Tags, ""); err != nil {
			bad(key+".tags", "bad pattern %q: %v", p.Tags, err)
		} else if strings.Contains(p.Tags, "/") {
			bad(key+".tags", "a tag has no \"/\": %q never matches", p.Tags)
		}
		if p.KeepLast < 0 {
			bad(key+".keep_last", "must not be negative (0 means no limit)")
		}
		if p.MaxUnused < 0 {
			bad(key+".max_unused", "must not be negative (0 turns it off)")
		}
		if p.UntaggedAfter < 0 || p.UntaggedAfter > 0 && p.UntaggedAfter < MinUntaggedAfter {
			bad(key+".untagged_after", "must be 0 (off) or at least %v, got %v", MinUntaggedAfter, p.UntaggedAfter)
		}
		if p.KeepLast == 0 && p.MaxUnused == 0 && p.UntaggedAfter == 0 {
			bad(key, "deletes nothing: set keep_last, max_unused or untagged_after")
		}
	}
}

// CheckRepositoryPattern reports a repositories pattern path.Match cannot
// use.
func CheckRepositoryPattern(pattern string) error {
	for _, part := range strings.Split(pattern, "/") {
		if part == "" {
			return fmt.Errorf("bad pattern %q: empty component", pattern)
		}
		if _, err := path.Match(part, ""); err != nil {
			return fmt.Errorf("bad pattern %q: %v", pattern, err)
		}
	}
	return nil
}
