package retention

import (
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
)

// Report is what a run deleted, or with DryRun what it would delete.
type Report struct {
	DryRun   bool          `json:"dryRun"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"-"`
	// Repositories counts the pushed repositories a policy governs;
	// Mirrors the pull-through mirror repositories a policy matched,
	// left alone.
	Repositories int `json:"repositories"`
	Mirrors      int `json:"mirrorsSkipped"`

	Tags      []Deletion `json:"tags"`
	Manifests []Deletion `json:"manifests"`
	// Protected are tags a policy would delete that were kept: a build
	// rule produces them, or a rule or an adopted image is built on them.
	Protected []Deletion `json:"protected"`

	TagsDeleted      int `json:"tagsDeleted"`
	ManifestsDeleted int `json:"manifestsDeleted"`
	// Failed counts deletions that were attempted and failed.
	Failed int `json:"failed"`
}

// Deletion is one tag or manifest a policy does not keep.
type Deletion struct {
	Repository string        `json:"repository"`
	Tag        string        `json:"tag,omitempty"`
	Digest     digest.Digest `json:"digest"`
	Reason     string        `json:"reason"`
	// Pushed is when the tag (or the manifest's link) was last written;
	// LastPulled when its manifest was last pulled, zero if never.
	Pushed     time.Time `json:"pushed"`
	LastPulled time.Time `json:"lastPulled,omitzero"`
	// Kept, in a real run, says why a planned deletion did not happen
	// (the repository changed meanwhile); Error, that it failed.
	Kept  string `json:"kept,omitempty"`
	Error string `json:"error,omitempty"`
}

// Kind says what d deletes: "tag" or "manifest".
func (d Deletion) Kind() string {
	if d.Tag != "" {
		return "tag"
	}
	return "manifest"
}

// String is the one-line result, e.g. "retention: 12 repositories;
// deleted 3 tags, 2 manifests; 1 protected tag kept in 20ms".
func (r *Report) String() string {
	verb := "deleted"
	tags, manifests := r.TagsDeleted, r.ManifestsDeleted
	if r.DryRun {
		verb = "would delete"
		tags, manifests = len(r.Tags), len(r.Manifests)
	}
	s := fmt.Sprintf("%d repositories; %s %d tags, %d manifests; %d protected tags kept", r.Repositories, verb, tags, manifests, len(r.Protected))
	if r.Failed > 0 {
		s += fmt.Sprintf("; %d deletions failed", r.Failed)
	}
	return s + " in " + r.Duration.Round(time.Millisecond).String()
}
