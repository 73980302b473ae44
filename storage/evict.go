package storage

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"
)

// Eviction keeps the pull-through cache within a budget. The cache is
// what mirror repositories (marked _proxied) hold; an image of it is a
// manifest no other manifest of its repository includes, with its index
// children and the referrers of either. Its size is what it alone holds:
// blobs (manifests included) that no other cached image and no pushed or
// built image references. Eviction removes whole images, least recently
// pulled first, by removing their tags and manifest links; the garbage
// collector then frees their blobs with its usual guarantees (grace,
// trash, reads restore). A pull racing an eviction either read the
// manifest before, and finds its blobs (restored from the trash, or
// fetched again from the upstream by the cache), or misses it after, and
// the cache fetches it again: never a broken image.

// CacheUsage is the share of the store the pull-through cache holds.
type CacheUsage struct {
	Repositories int   `json:"repositories"`
	Images       int   `json:"images"`
	Bytes        int64 `json:"bytes"`  // held by cached images alone: what evicting them all would free
	Shared       int64 `json:"shared"` // referenced by pushed or built images too: never evicted
}

// EvictOptions say what eviction takes.
type EvictOptions struct {
	// MaxSize bounds CacheUsage.Bytes; 0: no bound.
	MaxSize int64
	// MaxUnused evicts images not pulled for longer; 0: never by age.
	MaxUnused time.Duration
	// Reclaim also evicts until this many bytes are let go (the store is
	// short of space); 0: no more than the other bounds say.
	Reclaim int64
	// Now is the time ages are measured at.
	Now time.Time
	// DryRun reports what would go and changes nothing.
	DryRun bool
}

// EvictedImage is one image eviction took (or would take, on a dry run).
type EvictedImage struct {
	Repo     string        `json:"repo"`
	Digest   digest.Digest `json:"digest"`
	Tags     []string      `json:"tags,omitempty"`
	Bytes    int64         `json:"bytes"` // freed once the collector sweeps
	LastUsed time.Time     `json:"lastUsed"`
	Why      string        `json:"why"` // "unused" or "over budget"
}

// EvictReport says what an eviction found and did.
type EvictReport struct {
	DryRun  bool           `json:"dryRun"`
	Before  CacheUsage     `json:"before"`
	After   CacheUsage     `json:"after"`
	Evicted []EvictedImage `json:"evicted"`
}

// cachedImage is one image of a mirror repository.
type cachedImage struct {
	repo     string
	top      digest.Digest
	members  []digest.Digest // top, children, referrers: every manifest of it
	tags     []string
	blobs    []digest.Digest // everything members reference, and the members
	lastUsed time.Time
}

// cachePlan is the cache as one walk of the store found it.
type cachePlan struct {
	images []*cachedImage
	size   map[digest.Digest]int64
	users  map[digest.Digest]int // cached images referencing a blob
	pushed map[digest.Digest]bool
	repos  int
}

// CacheUsage measures the pull-through cache; pulls (may be nil) date its
// images.
func (s *Store) CacheUsage(ctx context.Context, pulls *PullLog) (CacheUsage, error) {
	p, err := s.planCache(ctx, pulls)
	if err != nil {
		return CacheUsage{}, err
	}
	return p.usage(), nil
}

// Evict removes cached images unused for longer than opts.MaxUnused, then,
// least recently used first, until the cache's own bytes are within
// opts.MaxSize. It removes tags and manifest links only: run GC after it
// to free the blobs.
func (s *Store) Evict(ctx context.Context, pulls *PullLog, opts EvictOptions) (*EvictReport, error) {
	p, err := s.planCache(ctx, pulls)
	if err != nil {
		return nil, err
	}
	rep := &EvictReport{DryRun: opts.DryRun, Before: p.usage()}
	sort.SliceStable(p.images, func(i, j int) bool { return p.images[i].lastUsed.Before(p.images[j].lastUsed) })
	bytes := rep.Before.Bytes
	short := bytes - opts.Reclaim // what the cache may keep when space is short
	for i, img := range p.images {
		why := ""
		switch {
		case opts.MaxUnused > 0 && opts.Now.Sub(img.lastUsed) > opts.MaxUnused:
			why = "unused"
		case opts.MaxSize > 0 && bytes > opts.MaxSize:
			why = "over budget"
		case opts.Reclaim > 0 && bytes > short:
			why = "low on space"
		default:
			continue
		}
		freed := p.remove(i)
		bytes -= freed
		rep.Evicted = append(rep.Evicted, EvictedImage{Repo: img.repo, Digest: img.top, Tags: img.tags, Bytes: freed, LastUsed: img.lastUsed, Why: why})
		if opts.DryRun {
			continue
		}
		if err := s.evictImage(ctx, img); err != nil {
			return rep, err
		}
	}
	rep.After = p.usage()
	return rep, nil
}

// evictImage removes img's tags and manifest links, the image itself
// first, so no client reaches its children through it afterwards.
func (s *Store) evictImage(ctx context.Context, img *cachedImage) error {
	for _, t := range img.tags {
		if d, err := s.ResolveTag(ctx, img.repo, t); err == nil && d == img.top {
			if err := s.deleteContent(ctx, tagPath(img.repo, t)); err != nil && !isNotFound(err) {
				return err
			}
		}
	}
	for _, m := range img.members {
		if err := s.deleteContent(ctx, manifestLinkPath(img.repo, m)); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// remove takes image i out of the plan and returns the bytes that frees.
func (p *cachePlan) remove(i int) int64 {
	img := p.images[i]
	p.images[i] = nil
	var freed int64
	for _, b := range img.blobs {
		p.users[b]--
		if p.users[b] == 0 && !p.pushed[b] {
			freed += p.size[b]
		}
	}
	return freed
}

func (p *cachePlan) usage() CacheUsage {
	u := CacheUsage{Repositories: p.repos}
	for _, img := range p.images {
		if img != nil {
			u.Images++
		}
	}
	for b, n := range p.users {
		switch {
		case n <= 0:
		case p.pushed[b]:
			u.Shared += p.size[b]
		default:
			u.Bytes += p.size[b]
		}
	}
	return u
}

// planCache walks the store: the blobs pushed repositories reference, and
// the images of the mirror repositories with their blobs and last use.
func (s *Store) planCache(ctx context.Context, pulls *PullLog) (*cachePlan, error) {
	idx, err := s.scanRepositories(ctx)
	if err != nil {
		return nil, err
	}
	p := &cachePlan{size: map[digest.Digest]int64{}, users: map[digest.Digest]int{}, pushed: map[digest.Digest]bool{}}
	pushed := newGCMarker(s)
	cached := newGCMarker(s)
	var mirrors []*gcRepo
	for _, r := range idx.sortedRepos() {
		proxied, err := s.exists(ctx, proxiedPath(r.name))
		if err != nil {
			return nil, err
		}
		if proxied {
			mirrors = append(mirrors, r)
			continue
		}
		roots := make([]digest.Digest, 0, len(r.manifests))
		for d := range r.manifests {
			roots = append(roots, d)
		}
		sort.Slice(roots, func(i, j int) bool { return roots[i] < roots[j] })
		if err := pushed.markFrom(ctx, r, roots); err != nil {
			return nil, err
		}
	}
	p.pushed = pushed.blobs
	p.repos = len(mirrors)
	for _, r := range mirrors {
		images, err := s.cachedImages(ctx, cached, r, pulls)
		if err != nil {
			return nil, err
		}
		p.images = append(p.images, images...)
	}
	for _, img := range p.images {
		for _, b := range img.blobs {
			if _, ok := p.size[b]; !ok {
				size, err := s.statBlob(ctx, b)
				if err != nil && !errors.Is(err, ErrBlobUnknown) {
					return nil, err
				}
				p.size[b] = size // a layer not fetched yet holds nothing
			}
			p.users[b]++
		}
	}
	return p, nil
}

// cachedImages groups the manifests of mirror repository r into images.
func (s *Store) cachedImages(ctx context.Context, m *gcMarker, r *gcRepo, pulls *PullLog) ([]*cachedImage, error) {
	refs := map[digest.Digest]*gcRefs{}
	included := map[digest.Digest]bool{} // children and referrers of another manifest
	for d := range r.manifests {
		rf, ok, err := m.read(ctx, gcRepoDigest{r.name, d})
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		refs[d] = rf
		for _, c := range rf.children {
			included[c] = true
		}
	}
	for _, rs := range r.referrers {
		for _, d := range rs {
			included[d] = true
		}
	}
	used := map[digest.Digest]time.Time{}
	if pulls != nil {
		var err error
		if used, err = pulls.LastPulled(ctx, r.name); err != nil {
			return nil, err
		}
	}
	tagsOf := map[digest.Digest][]string{}
	for t, mod := range r.tags {
		d, err := s.ResolveTag(ctx, r.name, t)
		if err != nil {
			continue
		}
		tagsOf[d] = append(tagsOf[d], t)
		if mod.After(used[d]) {
			used[d] = mod // a revalidated tag was pulled then
		}
	}
	var images []*cachedImage
	for top := range refs {
		if included[top] {
			continue
		}
		img := &cachedImage{repo: r.name, top: top, tags: tagsOf[top], lastUsed: r.manifests[top]}
		sort.Strings(img.tags)
		seen := map[digest.Digest]bool{}
		queue := []digest.Digest{top}
		for len(queue) > 0 {
			d := queue[0]
			queue = queue[1:]
			if seen[d] || refs[d] == nil {
				continue
			}
			seen[d] = true
			img.members = append(img.members, d)
			img.blobs = append(img.blobs, d)
			img.blobs = append(img.blobs, refs[d].blobs...)
			if t := used[d]; t.After(img.lastUsed) {
				img.lastUsed = t
			}
			queue = append(queue, refs[d].children...)
			queue = append(queue, r.referrers[d]...)
		}
		slices.Sort(img.blobs)
		img.blobs = slices.Compact(img.blobs)
		images = append(images, img)
	}
	sort.Slice(images, func(i, j int) bool { return images[i].top < images[j].top })
	return images, nil
}
