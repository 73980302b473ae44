package storage

import (
	"context"
	"sort"
	"strings"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

// trashedEntry is an untagged manifest whose link (and referrer entries)
// the sweep put in the trash.
type trashedEntry struct {
	link    string   // the link's path under /repositories
	entries []string // its referrer entries' paths
}

func (t *trashedEntry) paths() []string { return append([]string{t.link}, t.entries...) }

// sweepManifests puts the links of untagged manifests older than the grace
// period in the trash, with their referrer entries.
func (g *gc) sweepManifests(ctx context.Context) error {
	for _, r := range g.idx.sortedRepos() {
		ds := make([]digest.Digest, 0, len(r.manifests))
		for d, mod := range r.manifests {
			if !g.marked.visited[gcRepoDigest{r.name, d}] && !mod.After(g.cutoff) {
				ds = append(ds, d)
			}
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		for _, d := range ds {
			if err := ctx.Err(); err != nil {
				return err
			}
			rd := gcRepoDigest{r.name, d}
			if g.opts.DryRun {
				g.sweptManifest(rd)
				continue
			}
			link := manifestLinkPath(r.name, d)
			fi, err := g.s.driver.Stat(ctx, link)
			if err != nil {
				if isNotFound(err) {
					continue // deleted meanwhile
				}
				return err
			}
			if fi.ModTime().After(g.cutoff) {
				// Pushed again since the walk: keep it and what it references.
				if err := g.marked.markFrom(ctx, r, []digest.Digest{d}); err != nil {
					return err
				}
				continue
			}
			t := &trashedEntry{link: link}
			if err := g.s.moveIntoPlace(ctx, link, trashRepoPath(link)); err != nil {
				if isNotFound(err) {
					continue
				}
				return err
			}
			g.trashedManifests[rd] = t
			for _, e := range r.entries[d] {
				if err := g.s.moveIntoPlace(ctx, e, trashRepoPath(e)); err != nil {
					if isNotFound(err) {
						continue
					}
					return err
				}
				t.entries = append(t.entries, e)
			}
			g.sweptManifest(rd)
			g.tell(GCPhaseSweep, false)
		}
	}
	return nil
}

func (g *gc) sweptManifest(rd gcRepoDigest) {
	g.report.ManifestsSwept++
	if len(g.report.SweptManifests) < maxReportedItems {
		g.report.SweptManifests = append(g.report.SweptManifests, rd.repo+"@"+string(rd.d))
	}
}

// sweepBlobs walks /blobs and puts every blob that no kept manifest
// references, older than the grace period and with no link younger than it,
// in the trash (on a dry run, only counts them).
func (g *gc) sweepBlobs(ctx context.Context) error {
	type candidate struct {
		d    digest.Digest
		size int64
	}
	var candidates []candidate
	present := map[digest.Digest]bool{}
	err := g.s.driver.Walk(ctx, blobsRoot, func(fi storagedriver.FileInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if fi.IsDir() {
			return nil
		}
		d, ok := parseBlobPath(fi.Path())
		if !ok {
			return nil // a PutContent temporary file, or a stray fsck reports
		}
		present[d] = true
		g.scanned++
		switch {
		case g.marked.blobs[d]:
		case fi.ModTime().After(g.cutoff) || g.idx.youngLink(d, g.cutoff):
			g.report.BlobsYoung++
		default:
			candidates = append(candidates, candidate{d, fi.Size()})
		}
		g.tell(GCPhaseSweep, false)
		return nil
	})
	if err != nil && !isNotFound(err) {
		return err
	}
	// Links to blobs that are gone: what a collection killed between
	// deleting a blob and deleting its links left (deleteDangling).
	for d, links := range g.idx.links {
		if present[d] || g.marked.blobs[d] {
			continue
		}
		g.dangling = append(g.dangling, d)
		if g.opts.DryRun {
			for _, l := range links {
				if !l.mod.After(g.cutoff) {
					g.report.LinksSwept++
				}
			}
		}
	}
	for _, c := range candidates {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !g.opts.DryRun {
			if err := g.s.moveIntoPlace(ctx, blobPath(c.d), trashBlobPath(c.d)); err != nil {
				if isNotFound(err) {
					continue
				}
				return err
			}
			g.trashedBlobs[c.d] = c.size
		}
		g.report.BlobsSwept++
		g.report.BytesFreed += c.size
		for _, l := range g.idx.links[c.d] {
			if !l.mod.After(g.cutoff) && g.opts.DryRun {
				g.report.LinksSwept++
			}
		}
		g.tell(GCPhaseSweep, false)
	}
	return nil
}

// recheck walks the repositories again, marks from every tag and manifest
// written since the mark started (and from links younger than the grace
// period), and puts back from the trash whatever that reaches: a push that
// raced the sweep keeps its blobs and index children.
func (g *gc) recheck(ctx context.Context) error {
	idx, err := g.s.scanRepositories(ctx)
	if err != nil {
		return err
	}
	g.marked.missing = func(ctx context.Context, rd gcRepoDigest) (bool, error) {
		t := g.trashedManifests[rd]
		if t == nil {
			return false, nil
		}
		if err := g.putBack(ctx, t.paths()); err != nil {
			return false, err
		}
		delete(g.trashedManifests, rd)
		g.unsweptManifest(rd)
		return true, nil
	}
	defer func() { g.marked.missing = nil }()
	for _, r := range idx.sortedRepos() {
		roots, err := g.roots(ctx, r, false, g.cutoff)
		if err != nil {
			return err
		}
		if err := g.marked.markFrom(ctx, r, roots); err != nil {
			return err
		}
	}
	ds := make([]digest.Digest, 0, len(g.trashedBlobs))
	for d := range g.trashedBlobs {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	for _, d := range ds {
		if !g.marked.blobs[d] && !idx.youngLink(d, g.cutoff) {
			continue
		}
		if _, err := g.s.restoreBlob(ctx, d); err != nil {
			return err
		}
		g.unsweptBlob(d)
	}
	// Links written since the first walk are in the new index.
	g.idx.links = idx.links
	return nil
}

func (g *gc) unsweptManifest(rd gcRepoDigest) {
	g.report.ManifestsSwept--
	g.report.ManifestsRestored++
	item := rd.repo + "@" + string(rd.d)
	for i, s := range g.report.SweptManifests {
		if s == item {
			g.report.SweptManifests = append(g.report.SweptManifests[:i], g.report.SweptManifests[i+1:]...)
			break
		}
	}
}

func (g *gc) unsweptBlob(d digest.Digest) {
	g.report.BlobsSwept--
	g.report.BytesFreed -= g.trashedBlobs[d]
	g.report.BlobsRestored++
	delete(g.trashedBlobs, d)
}

// deleteTrashed deletes what is still in the trash, and the _layers links
// (older than the grace period) to the blobs it deletes.
func (g *gc) deleteTrashed(ctx context.Context) error {
	rds := make([]gcRepoDigest, 0, len(g.trashedManifests))
	for rd := range g.trashedManifests {
		rds = append(rds, rd)
	}
	sort.Slice(rds, func(i, j int) bool {
		return rds[i].repo < rds[j].repo || rds[i].repo == rds[j].repo && rds[i].d < rds[j].d
	})
	for _, rd := range rds {
		t := g.trashedManifests[rd]
		// Pushed again meanwhile: the new link stands, its entries come back.
		again, err := g.s.exists(ctx, t.link)
		if err != nil {
			return err
		}
		if again {
			if err := g.putBack(ctx, t.paths()); err != nil {
				return err
			}
			delete(g.trashedManifests, rd)
			g.unsweptManifest(rd)
			continue
		}
		for _, p := range t.paths() {
			if _, err := g.s.removeFile(ctx, trashRepoPath(p)); err != nil {
				return err
			}
		}
		delete(g.trashedManifests, rd)
		g.tell(GCPhaseDelete, false)
	}

	ds := make([]digest.Digest, 0, len(g.trashedBlobs))
	for d := range g.trashedBlobs {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	for _, d := range ds {
		if err := ctx.Err(); err != nil {
			return err
		}
		gone, err := g.s.removeFile(ctx, trashBlobPath(d))
		if err != nil {
			return err
		}
		if !gone {
			// A reader moved it back (restoreBlob) after the re-check.
			g.unsweptBlob(d)
			continue
		}
		delete(g.trashedBlobs, d)
		if len(g.report.SweptBlobs) < maxReportedItems {
			g.report.SweptBlobs = append(g.report.SweptBlobs, d)
		}
		// A link refreshed meanwhile stays: the PUT that refreshed it will
		// now fail its check, which is harmless.
		if err := g.deleteOldLinks(ctx, d); err != nil {
			return err
		}
		g.tell(GCPhaseDelete, false)
	}
	return g.deleteDangling(ctx)
}

// deleteDangling deletes the _layers links, older than the grace period,
// to blobs the sweep did not find: deleteTrashed deletes a blob, then its
// links, and a process killed in between leaves the links behind, which
// fsck reports and no later sweep (it walks /blobs) would otherwise see.
// A blob pushed again meanwhile keeps its links.
func (g *gc) deleteDangling(ctx context.Context) error {
	for _, d := range g.dangling {
		if err := ctx.Err(); err != nil {
			return err
		}
		back := false
		for _, p := range []string{blobPath(d), trashBlobPath(d)} {
			there, err := g.s.exists(ctx, p)
			if err != nil {
				return err
			}
			back = back || there
		}
		if back {
			continue
		}
		if err := g.deleteOldLinks(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// deleteOldLinks deletes the _layers links to blob d that are older than
// the grace period.
func (g *gc) deleteOldLinks(ctx context.Context, d digest.Digest) error {
	for _, l := range g.idx.links[d] {
		fi, err := g.s.driver.Stat(ctx, l.path)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return err
		}
		if fi.ModTime().After(g.cutoff) {
			continue
		}
		if err := g.s.driver.Delete(ctx, l.path); err != nil && !isNotFound(err) {
			return err
		}
		g.report.LinksSwept++
	}
	return nil
}

// putBack moves repository files from the trash to where they were, unless
// something was written there meanwhile (then the trash copy goes).
func (g *gc) putBack(ctx context.Context, paths []string) error {
	for _, p := range paths {
		if err := g.s.restoreFile(ctx, p, trashRepoPath(p)); err != nil {
			return err
		}
	}
	return nil
}

// restoreFile moves the trash copy from back to p, or removes it when p
// exists again.
func (s *Store) restoreFile(ctx context.Context, p, from string) error {
	there, err := s.exists(ctx, p)
	if err != nil {
		return err
	}
	if there {
		_, err := s.removeFile(ctx, from)
		return err
	}
	if err := s.moveIntoPlace(ctx, from, p); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

// putBackAll undoes the sweep after an error: everything in the trash goes back.
func (g *gc) putBackAll(ctx context.Context) {
	for d := range g.trashedBlobs {
		if _, err := g.s.restoreBlob(ctx, d); err == nil {
			g.unsweptBlob(d)
		}
	}
	for rd, t := range g.trashedManifests {
		if err := g.putBack(ctx, t.paths()); err == nil {
			delete(g.trashedManifests, rd)
			g.unsweptManifest(rd)
		}
	}
}

// recoverTrash puts back what an interrupted collection left in the trash:
// it is all judged again by this one.
func (g *gc) recoverTrash(ctx context.Context) error {
	g.tell(GCPhaseRecover, true)
	var files []string
	err := g.s.driver.Walk(ctx, trashRoot, func(fi storagedriver.FileInfo) error {
		if !fi.IsDir() {
			files = append(files, fi.Path())
		}
		return nil
	})
	if err != nil && !isNotFound(err) {
		return err
	}
	for _, p := range files {
		rel := strings.TrimPrefix(p, trashRoot+"/")
		if repoRel, ok := strings.CutPrefix(rel, "_repositories/"); ok {
			if err := g.s.restoreFile(ctx, reposRoot+"/"+repoRel, p); err != nil {
				return err
			}
			g.report.TrashRecovered++
			continue
		}
		alg, hex, _ := strings.Cut(rel, "/")
		d, ok := pathDigest(alg, hex)
		if !ok {
			continue // not ours
		}
		if _, err := g.s.restoreBlob(ctx, d); err != nil {
			return err
		}
		// Gone unless restoreBlob found it moved back already.
		if _, err := g.s.removeFile(ctx, p); err != nil {
			return err
		}
		g.report.TrashRecovered++
	}
	return nil
}

// removeFile deletes the file at p and reports whether it was there: unlike
// the filesystem driver's Delete (a stat, then a remove), it cannot report a
// file a concurrent rename took away as deleted.
func (s *Store) removeFile(ctx context.Context, p string) (bool, error) {
	err := s.files.remove(ctx, p)
	if isNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
