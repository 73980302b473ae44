package retention

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"kiln/storage"
)

// repoPlan is what one repository's policy deletes.
type repoPlan struct {
	tags      []Deletion
	manifests []Deletion // parents (indexes, referrers) before what they reach
	protected []Deletion
}

// taggedManifest is a tag as the planner saw it.
type taggedManifest struct {
	tag    string
	digest digest.Digest
	pushed time.Time
}

// planRepo decides what p deletes in repo at now. It only reads.
func (r *Runner) planRepo(ctx context.Context, repo string, p *Policy, protected map[Ref]bool, now time.Time) (*repoPlan, error) {
	tags, err := r.tags(ctx, repo)
	if err != nil {
		return nil, err
	}
	pulls := map[digest.Digest]time.Time{}
	if r.opts.Pulls != nil {
		if pulls, err = r.opts.Pulls.LastPulled(ctx, repo); err != nil {
			return nil, fmt.Errorf("pull times of %s: %w", repo, err)
		}
	}
	lastUse := func(pushed time.Time, d digest.Digest) time.Time {
		if pulled := pulls[d]; pulled.After(pushed) {
			return pulled
		}
		return pushed
	}

	plan := &repoPlan{}
	kept := map[digest.Digest]bool{} // manifests of the tags that stay
	var managed []taggedManifest
	for _, t := range tags {
		if r.opts.Transient != nil && r.opts.Transient(t.tag) {
			kept[t.digest] = true
			continue
		}
		if p.matchTag(t.tag) {
			managed = append(managed, t)
		} else {
			kept[t.digest] = true
		}
	}
	// Newest push first; equal times by name, so runs agree.
	slices.SortFunc(managed, func(a, b taggedManifest) int {
		if c := b.pushed.Compare(a.pushed); c != 0 {
			return c
		}
		return cmp.Compare(a.tag, b.tag)
	})
	for i, t := range managed {
		var reason string
		used := lastUse(t.pushed, t.digest)
		switch {
		case p.KeepLast > 0 && i >= p.KeepLast:
			reason = fmt.Sprintf("not among the %d most recently pushed tags", p.KeepLast)
		case p.MaxUnused > 0 && now.Sub(used) > p.MaxUnused:
			reason = fmt.Sprintf("neither pushed nor pulled for %s (max_unused %s)", age(now, used), p.MaxUnused)
		}
		if reason == "" {
			kept[t.digest] = true
			continue
		}
		del := Deletion{Repository: repo, Tag: t.tag, Digest: t.digest, Reason: reason, Pushed: t.pushed, LastPulled: pulls[t.digest]}
		if protected[Ref{Repo: repo, Tag: t.tag}] {
			kept[t.digest] = true
			plan.protected = append(plan.protected, del)
			continue
		}
		plan.tags = append(plan.tags, del)
	}
	slices.SortFunc(plan.tags, func(a, b Deletion) int { return cmp.Compare(a.Tag, b.Tag) })

	if p.UntaggedAfter > 0 {
		if plan.manifests, err = r.planUntagged(ctx, repo, p, kept, lastUse, pulls, now); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// tags reads repo's tags with what they point to and when they were
// pushed; a tag deleted while being read is left out.
func (r *Runner) tags(ctx context.Context, repo string) ([]taggedManifest, error) {
	s := r.opts.Store
	names, err := s.Tags(ctx, repo)
	if errors.Is(err, storage.ErrNameUnknown) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tags of %s: %w", repo, err)
	}
	out := make([]taggedManifest, 0, len(names))
	for _, name := range names {
		d, err := s.ResolveTag(ctx, repo, name)
		if errors.Is(err, storage.ErrTagUnknown) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tag %s:%s: %w", repo, name, err)
		}
		pushed, err := s.TagAge(ctx, repo, name)
		if errors.Is(err, storage.ErrTagUnknown) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tag %s:%s: %w", repo, name, err)
		}
		out = append(out, taggedManifest{tag: name, digest: d, pushed: pushed})
	}
	return out, nil
}

// planUntagged returns the manifests of repo that nothing kept reaches and
// that were neither pushed nor pulled within p.UntaggedAfter. Kept are
// the kept tags' manifests and every manifest still within the duration,
// with everything they reach: index children, referrers (manifests whose
// subject they are) and subjects.
func (r *Runner) planUntagged(ctx context.Context, repo string, p *Policy, tagged map[digest.Digest]bool, lastUse func(time.Time, digest.Digest) time.Time, pulls map[digest.Digest]time.Time, now time.Time) ([]Deletion, error) {
	links, err := r.opts.Store.ManifestLinks(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("manifests of %s: %w", repo, err)
	}
	edges, err := r.edges(ctx, repo, links)
	if err != nil {
		return nil, err
	}
	reached := map[digest.Digest]bool{}
	var queue []digest.Digest
	for d := range tagged {
		queue = append(queue, d)
	}
	for d, pushed := range links {
		if now.Sub(lastUse(pushed, d)) <= p.UntaggedAfter {
			queue = append(queue, d)
		}
	}
	for len(queue) > 0 {
		d := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if reached[d] {
			continue
		}
		reached[d] = true
		queue = append(queue, edges.out[d]...)
	}
	var dels []Deletion
	for d, pushed := range links {
		if reached[d] {
			continue
		}
		used := lastUse(pushed, d)
		dels = append(dels, Deletion{Repository: repo, Digest: d, Pushed: pushed, LastPulled: pulls[d],
			Reason: fmt.Sprintf("untagged, neither pushed nor pulled for %s (untagged_after %s)", age(now, used), p.UntaggedAfter)})
	}
	return parentsFirst(dels, edges.parents), nil
}

// manifestEdges are the references between a repository's manifests.
type manifestEdges struct {
	// out: what keeping a manifest keeps (children, subject, referrers).
	out map[digest.Digest][]digest.Digest
	// parents: the manifests that point at one (indexes over it,
	// referrers of it); deleting them first never leaves a dangling
	// pointer behind an interrupted run.
	parents map[digest.Digest][]digest.Digest
}

func (r *Runner) edges(ctx context.Context, repo string, links map[digest.Digest]time.Time) (*manifestEdges, error) {
	e := &manifestEdges{out: map[digest.Digest][]digest.Digest{}, parents: map[digest.Digest][]digest.Digest{}}
	for _, d := range slices.Sorted(maps.Keys(links)) {
		m, err := r.opts.Store.GetManifest(ctx, repo, d)
		if errors.Is(err, storage.ErrManifestUnknown) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("manifest %s@%s: %w", repo, d, err)
		}
		parsed, err := storage.ParseManifest(m.MediaType, m.Content)
		if err != nil {
			continue // references nothing kiln can follow (fsck reports it)
		}
		for _, c := range parsed.Manifests {
			e.out[d] = append(e.out[d], c.Digest)
			e.parents[c.Digest] = append(e.parents[c.Digest], d)
		}
		if parsed.Subject != nil {
			s := parsed.Subject.Digest
			e.out[d] = append(e.out[d], s) // a kept referrer keeps its subject
			e.out[s] = append(e.out[s], d) // a kept subject keeps its referrers
			e.parents[s] = append(e.parents[s], d)
		}
	}
	return e, nil
}

// parentsFirst orders dels so that a manifest comes after every deleted
// manifest pointing at it; otherwise by digest.
func parentsFirst(dels []Deletion, parents map[digest.Digest][]digest.Digest) []Deletion {
	slices.SortFunc(dels, func(a, b Deletion) int { return cmp.Compare(a.Digest, b.Digest) })
	pending := map[digest.Digest]bool{}
	for _, d := range dels {
		pending[d.Digest] = true
	}
	out := make([]Deletion, 0, len(dels))
	for len(out) < len(dels) {
		progress := false
		for _, d := range dels {
			if !pending[d.Digest] || slices.ContainsFunc(parents[d.Digest], func(p digest.Digest) bool { return pending[p] && p != d.Digest }) {
				continue
			}
			pending[d.Digest] = false
			out = append(out, d)
			progress = true
		}
		if !progress { // a cycle cannot be stored (digests), but never loop
			for _, d := range dels {
				if pending[d.Digest] {
					pending[d.Digest] = false
					out = append(out, d)
				}
			}
		}
	}
	return out
}

// age is how long ago t was, rounded for people.
func age(now, t time.Time) time.Duration {
	return now.Sub(t).Round(time.Minute)
}
