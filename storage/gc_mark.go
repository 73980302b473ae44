package storage

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

// gcIndex is what one walk of /repositories found, with modification times.
type gcIndex struct {
	repos map[string]*gcRepo
	links map[digest.Digest][]gcLink // _layers links of every repository, by blob
}

type gcRepo struct {
	name      string
	tags      map[string]time.Time
	manifests map[digest.Digest]time.Time       // _manifests links
	referrers map[digest.Digest][]digest.Digest // subject -> referrers
	entries   map[digest.Digest][]string        // referrer -> paths of its _referrers entries
}

type gcLink struct {
	path string
	mod  time.Time
}

type gcRepoDigest struct {
	repo string
	d    digest.Digest
}

func (x *gcIndex) repo(name string) *gcRepo {
	r := x.repos[name]
	if r == nil {
		r = &gcRepo{
			name:      name,
			tags:      map[string]time.Time{},
			manifests: map[digest.Digest]time.Time{},
			referrers: map[digest.Digest][]digest.Digest{},
			entries:   map[digest.Digest][]string{},
		}
		x.repos[name] = r
	}
	return r
}

func (x *gcIndex) sortedRepos() []*gcRepo {
	out := make([]*gcRepo, 0, len(x.repos))
	for _, r := range x.repos {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// youngLink reports whether some repository's link to d was written after cutoff.
func (x *gcIndex) youngLink(d digest.Digest, cutoff time.Time) bool {
	for _, l := range x.links[d] {
		if l.mod.After(cutoff) {
			return true
		}
	}
	return false
}

// scanRepositories walks /repositories once (driver.Walk: one listing per
// directory on the filesystem, a flat listing on S3) and indexes tags,
// manifest links, _layers links and referrer entries.
func (s *Store) scanRepositories(ctx context.Context) (*gcIndex, error) {
	x := &gcIndex{repos: map[string]*gcRepo{}, links: map[digest.Digest][]gcLink{}}
	err := s.driver.Walk(ctx, reposRoot, func(fi storagedriver.FileInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if fi.IsDir() {
			return nil
		}
		p := fi.Path()
		name, kind, rest, ok := parseRepoPath(p)
		if !ok || name == "" {
			return nil
		}
		switch {
		case kind == layersDir && len(rest) == 2:
			if d, ok := pathDigest(rest[0], rest[1]); ok {
				x.repo(name)
				x.links[d] = append(x.links[d], gcLink{path: p, mod: fi.ModTime()})
			}
		case kind == manifestsDir && len(rest) == 2:
			if d, ok := pathDigest(rest[0], rest[1]); ok {
				x.repo(name).manifests[d] = fi.ModTime()
			}
		case kind == tagsDir && len(rest) == 1:
			if !isOwnTempName(rest[0]) {
				x.repo(name).tags[rest[0]] = fi.ModTime()
			}
		case kind == referrersDir && len(rest) == 3:
			subject, ok1 := pathDigest(rest[0], rest[1])
			alg, hex, _ := strings.Cut(rest[2], "-")
			referrer, ok2 := pathDigest(alg, hex)
			if ok1 && ok2 {
				r := x.repo(name)
				r.referrers[subject] = append(r.referrers[subject], referrer)
				r.entries[referrer] = append(r.entries[referrer], p)
			}
		}
		return nil
	})
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	return x, nil
}

// gcMarker marks manifests and the blobs they reference.
type gcMarker struct {
	s         *Store
	visited   map[gcRepoDigest]bool
	blobs     map[digest.Digest]bool
	refs      map[digest.Digest]*gcRefs // parsed manifests, by digest
	repos     int
	manifests int
	// missing, when set, is asked about a manifest whose link is not
	// there; it may put the link back and report true (the re-check does,
	// for links the sweep has just put in the trash).
	missing func(ctx context.Context, rd gcRepoDigest) (bool, error)
}

// gcRefs is what a manifest references.
type gcRefs struct {
	blobs    []digest.Digest // config and layers
	children []digest.Digest // index children
}

func newGCMarker(s *Store) *gcMarker {
	return &gcMarker{s: s, visited: map[gcRepoDigest]bool{}, blobs: map[digest.Digest]bool{}, refs: map[digest.Digest]*gcRefs{}}
}

// markFrom marks roots of repo r and everything they reach: the manifest's
// own blob, its config and layers, its index children, and the manifests
// whose subject it is.
func (m *gcMarker) markFrom(ctx context.Context, r *gcRepo, roots []digest.Digest) error {
	queue := append([]digest.Digest(nil), roots...)
	tried := map[digest.Digest]bool{}
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := queue[0]
		queue = queue[1:]
		rd := gcRepoDigest{r.name, d}
		if m.visited[rd] || tried[d] {
			continue
		}
		tried[d] = true
		refs, ok, err := m.read(ctx, rd)
		if err != nil {
			return err
		}
		if !ok {
			continue // not a manifest of r (a tag or child pointing nowhere)
		}
		m.visited[rd] = true
		m.manifests++
		m.blobs[d] = true
		for _, b := range refs.blobs {
			m.blobs[b] = true
		}
		queue = append(queue, refs.children...)
		queue = append(queue, r.referrers[d]...)
	}
	return nil
}

// read returns what manifest rd references; false when repository rd.repo
// holds no such manifest. A manifest whose bytes are missing or do not
// parse references nothing (fsck reports it).
func (m *gcMarker) read(ctx context.Context, rd gcRepoDigest) (*gcRefs, bool, error) {
	mt, err := m.s.driver.GetContent(ctx, manifestLinkPath(rd.repo, rd.d))
	if isNotFound(err) && m.missing != nil {
		var back bool
		if back, err = m.missing(ctx, rd); err == nil && back {
			mt, err = m.s.driver.GetContent(ctx, manifestLinkPath(rd.repo, rd.d))
		} else if err == nil {
			return nil, false, nil
		}
	}
	if err != nil {
		if isNotFound(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	if refs := m.refs[rd.d]; refs != nil {
		return refs, true, nil
	}
	refs := &gcRefs{}
	content, err := m.s.getBlob(ctx, rd.d)
	switch {
	case errors.Is(err, ErrBlobUnknown):
		return refs, true, nil
	case err != nil:
		return nil, false, err
	}
	if p, err := ParseManifest(string(mt), content); err == nil {
		for _, b := range p.Blobs {
			refs.blobs = append(refs.blobs, b.Digest)
		}
		for _, c := range p.Manifests {
			refs.children = append(refs.children, c.Digest)
		}
	}
	m.refs[rd.d] = refs
	return refs, true, nil
}

// mark marks from every tag, every manifest younger than the grace period
// and, unless untagged manifests are to be deleted, every manifest.
func (g *gc) mark(ctx context.Context) error {
	for _, r := range g.idx.sortedRepos() {
		roots, err := g.roots(ctx, r, !g.opts.DeleteUntagged, time.Time{})
		if err != nil {
			return err
		}
		if err := g.marked.markFrom(ctx, r, roots); err != nil {
			return err
		}
		g.marked.repos++
		g.tell(GCPhaseMark, false)
	}
	return nil
}

// roots returns r's tagged manifests (only those of tags written after
// tagsAfter), its manifests younger than the grace period, and with all
// every manifest.
func (g *gc) roots(ctx context.Context, r *gcRepo, all bool, tagsAfter time.Time) ([]digest.Digest, error) {
	var roots []digest.Digest
	tags := make([]string, 0, len(r.tags))
	for t, mod := range r.tags {
		if mod.After(tagsAfter) {
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	for _, t := range tags {
		d, err := g.s.ResolveTag(ctx, r.name, t)
		if err != nil {
			if errors.Is(err, ErrTagUnknown) || isDigestError(err) {
				continue // deleted meanwhile, or not a digest
			}
			return nil, err
		}
		roots = append(roots, d)
	}
	ds := make([]digest.Digest, 0, len(r.manifests))
	for d, mod := range r.manifests {
		if all || mod.After(g.cutoff) {
			ds = append(ds, d)
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return append(roots, ds...), nil
}

// isDigestError reports a tag file that does not hold a digest (fsck
// reports it; the collector ignores it).
func isDigestError(err error) bool {
	return errors.Is(err, digest.ErrDigestInvalidFormat) || errors.Is(err, digest.ErrDigestInvalidLength) || errors.Is(err, digest.ErrDigestUnsupported)
}
