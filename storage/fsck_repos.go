package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ---------------------------------------------------------------- repositories

// findRepos returns the repositories at or under directory p (named name).
func (f *fsck) findRepos(ctx context.Context, p, name string) ([]string, error) {
	children, err := f.list(ctx, p)
	if err != nil {
		return nil, err
	}
	var repos []string
	isRepo := false
	for _, c := range children {
		cp := path.Join(p, c)
		dir, err := f.isDir(ctx, cp)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, err
		}
		repo, kind, _, entry := parseRepoPath(cp)
		wantDir, known := repoEntries[kind]
		switch {
		case entry && repo != "" && known && dir == wantDir:
			isRepo = isRepo || dir // a marker alone makes no repository
		case !dir:
			f.stray(ctx, cp, "a file among repositories")
		case entry:
			f.stray(ctx, cp, "not a repository directory")
		default:
			sub, err := f.findRepos(ctx, cp, path.Join(name, c))
			if err != nil {
				return nil, err
			}
			repos = append(repos, sub...)
		}
	}
	if isRepo && name != "" {
		repos = append(repos, name)
	}
	return repos, nil
}

// digestTree lists the files of an <alg>/<hex> tree (_layers, _manifests),
// reporting strays and leftovers, and returns the digests found.
func (f *fsck) digestTree(ctx context.Context, root string) ([]digest.Digest, error) {
	algs, err := f.list(ctx, root)
	if err != nil {
		return nil, err
	}
	var out []digest.Digest
	for _, alg := range algs {
		ap := path.Join(root, alg)
		if dir, err := f.isDir(ctx, ap); err != nil {
			return nil, err
		} else if !dir || !fsckAlgorithm(alg) {
			f.stray(ctx, ap, "not a digest algorithm directory")
			continue
		}
		names, err := f.list(ctx, ap)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			p := path.Join(ap, name)
			if isTempName(name) {
				f.leftover(FsckLeftoverTemp, p, "temporary file of an interrupted write", f.remove(ctx, p))
				continue
			}
			d := digest.NewDigestFromEncoded(digest.Algorithm(alg), name)
			if d.Validate() != nil {
				f.stray(ctx, p, "not named by a digest")
				continue
			}
			if dir, err := f.isDir(ctx, p); err != nil {
				return nil, err
			} else if dir {
				f.stray(ctx, p, "a directory where a link belongs")
				continue
			}
			out = append(out, d)
		}
	}
	return out, nil
}

type fsckManifest struct {
	parsed *ParsedManifest
	size   int64
	broken string // why it cannot be served; "" when it can
}

func (f *fsck) repo(ctx context.Context, repo string) error {
	// A mirror copy holds only what clients pulled; the rest of what its
	// manifests name is fetched on demand, so its absence is no problem
	// (corrupt content still is).
	mirror, _, err := f.s.IsProxied(ctx, repo)
	if err != nil {
		return err
	}
	// Layer links: each must name a good blob and hold its digest.
	linked := map[digest.Digest]bool{}
	layers, err := f.digestTree(ctx, path.Join(repoPath(repo), "_layers"))
	if err != nil {
		return err
	}
	for _, d := range layers {
		f.report.LayerLinks++
		p := layerLinkPath(repo, d)
		why, err := f.blobState(ctx, d)
		if err != nil {
			return err
		}
		if why != "" {
			f.problem(FsckLayerDangling, p, why, f.remove(ctx, p))
			continue
		}
		linked[d] = true
		b, err := f.s.driver.GetContent(ctx, p)
		if err != nil {
			return err
		}
		if string(b) != string(d) {
			f.problem(FsckLinkContent, p, fmt.Sprintf("holds %q", fsckTruncate(string(b))), func() (string, error) {
				return "rewritten", f.s.putContent(ctx, p, []byte(d))
			})
		}
	}

	// Manifest links: each must name a good blob that parses as the
	// link's media type and whose references the repository can serve.
	manifests := map[digest.Digest]*fsckManifest{}
	mds, err := f.digestTree(ctx, path.Join(repoPath(repo), "_manifests"))
	if err != nil {
		return err
	}
	type brokenRef struct{ kind, detail string }
	var order []digest.Digest
	causes := map[digest.Digest]brokenRef{}
	for _, d := range mds {
		f.report.Manifests++
		p := manifestLinkPath(repo, d)
		m := &fsckManifest{}
		manifests[d] = m
		order = append(order, d)
		why, err := f.blobState(ctx, d)
		if err != nil {
			return err
		}
		if why != "" {
			m.broken = why
			causes[d] = brokenRef{FsckManifestDangling, why}
			continue
		}
		mt, err := f.s.driver.GetContent(ctx, p)
		if err != nil {
			return err
		}
		content, err := f.s.getBlob(ctx, d)
		if err != nil {
			return err
		}
		m.size = int64(len(content))
		parsed, err := ParseManifest(string(mt), content)
		if err != nil {
			m.broken = fmt.Sprintf("as %q: %v", fsckTruncate(string(mt)), err)
			causes[d] = brokenRef{FsckManifestInvalid, m.broken}
			continue
		}
		m.parsed = parsed
		for _, b := range parsed.Blobs {
			if linked[b.Digest] {
				continue
			}
			why, err := f.blobState(ctx, b.Digest)
			if err != nil {
				return err
			}
			if why == "" {
				// The bytes are there, only the link is not: restoring
				// it is what the push had done.
				lp := layerLinkPath(repo, b.Digest)
				f.problem(FsckManifestUnlinked, p, "references "+string(b.Digest)+", which the repository has no link to", func() (string, error) {
					if err := f.s.putContent(ctx, lp, []byte(b.Digest)); err != nil {
						return "", err
					}
					linked[b.Digest] = true
					return "linked " + lp, nil
				})
				// Not broken: the fix is the link, with or without Repair.
				continue
			}
			if mirror && f.missing[b.Digest] {
				continue
			}
			m.broken = "references " + why
			causes[d] = brokenRef{FsckManifestBlob, m.broken}
			break
		}
	}
	// An index is broken when a child is missing or broken: repeat until
	// nothing changes, so breakage travels up nested indexes.
	for changed := true; changed; {
		changed = false
		for _, d := range order {
			m := manifests[d]
			if m.broken != "" || m.parsed == nil {
				continue
			}
			for _, c := range m.parsed.Manifests {
				child, ok := manifests[c.Digest]
				switch {
				case !ok && mirror:
					continue // a platform nobody pulled yet
				case !ok:
					m.broken = "child manifest " + string(c.Digest) + " is not in the repository"
				case child.broken != "":
					m.broken = "child manifest " + string(c.Digest) + " is broken"
				default:
					continue
				}
				causes[d] = brokenRef{FsckManifestChild, m.broken}
				changed = true
				break
			}
		}
	}
	for _, d := range order {
		if c, ok := causes[d]; ok {
			p := manifestLinkPath(repo, d)
			f.problem(c.kind, p, c.detail, func() (string, error) {
				if err := f.s.deleteContent(ctx, p); err != nil && !isNotFound(err) {
					return "", err
				}
				return "removed the link (the bytes stay in " + blobPath(d) + ")", nil
			})
		}
	}

	if err := f.referrers(ctx, repo, manifests); err != nil {
		return err
	}
	return f.tags(ctx, repo, manifests)
}

func (f *fsck) referrers(ctx context.Context, repo string, manifests map[digest.Digest]*fsckManifest) error {
	root := path.Join(repoPath(repo), "_referrers")
	listed := map[[2]digest.Digest]bool{} // subject, referrer
	algs, err := f.list(ctx, root)
	if err != nil {
		return err
	}
	for _, alg := range algs {
		ap := path.Join(root, alg)
		if dir, err := f.isDir(ctx, ap); err != nil {
			return err
		} else if !dir || !fsckAlgorithm(alg) {
			f.stray(ctx, ap, "not a digest algorithm directory")
			continue
		}
		subjects, err := f.list(ctx, ap)
		if err != nil {
			return err
		}
		for _, sh := range subjects {
			sp := path.Join(ap, sh)
			subject := digest.NewDigestFromEncoded(digest.Algorithm(alg), sh)
			if dir, err := f.isDir(ctx, sp); err != nil {
				return err
			} else if !dir || subject.Validate() != nil {
				f.stray(ctx, sp, "not a subject directory")
				continue
			}
			names, err := f.list(ctx, sp)
			if err != nil {
				return err
			}
			for _, name := range names {
				p := path.Join(sp, name)
				if isTempName(name) {
					f.leftover(FsckLeftoverTemp, p, "temporary file of an interrupted write", f.remove(ctx, p))
					continue
				}
				f.report.Referrers++
				ralg, rhex, _ := strings.Cut(name, "-")
				ref := digest.NewDigestFromEncoded(digest.Algorithm(ralg), rhex)
				if ref.Validate() != nil {
					f.problem(FsckReferrerInvalid, p, "not named <alg>-<hex>", f.remove(ctx, p))
					continue
				}
				b, err := f.s.driver.GetContent(ctx, p)
				if err != nil {
					return err
				}
				var desc v1.Descriptor
				if err := json.Unmarshal(b, &desc); err != nil {
					f.problem(FsckReferrerInvalid, p, "not a JSON descriptor: "+err.Error(), f.remove(ctx, p))
					continue
				}
				if desc.Digest != ref {
					f.problem(FsckReferrerInvalid, p, "descriptor is of "+fsckTruncate(string(desc.Digest)), f.remove(ctx, p))
					continue
				}
				m, ok := manifests[ref]
				switch {
				case !ok:
					// Written before the manifest's link, removed after it.
					f.leftover(FsckLeftoverReferrer, p, "manifest "+string(ref)+" is not in the repository", f.remove(ctx, p))
					continue
				case m.broken != "":
					f.problem(FsckReferrerInvalid, p, "manifest "+string(ref)+" is broken", f.remove(ctx, p))
					continue
				case m.parsed.Subject == nil || m.parsed.Subject.Digest != subject:
					f.problem(FsckReferrerInvalid, p, "manifest "+string(ref)+" does not have subject "+string(subject), f.remove(ctx, p))
					continue
				}
				listed[[2]digest.Digest{subject, ref}] = true
			}
		}
	}
	var missing []digest.Digest
	for d, m := range manifests {
		if m.broken == "" && m.parsed.Subject != nil && !listed[[2]digest.Digest{m.parsed.Subject.Digest, d}] {
			missing = append(missing, d)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	for _, d := range missing {
		m := manifests[d]
		p := referrerPath(repo, m.parsed.Subject.Digest, d)
		f.problem(FsckReferrerMissing, p, "manifest "+string(d)+" has this subject but no referrer entry", func() (string, error) {
			desc, err := json.Marshal(m.parsed.Descriptor(d, m.size))
			if err != nil {
				return "", err
			}
			return "written", f.s.putContent(ctx, p, desc)
		})
	}
	return nil
}

func (f *fsck) tags(ctx context.Context, repo string, manifests map[digest.Digest]*fsckManifest) error {
	root := tagsPath(repo)
	names, err := f.list(ctx, root)
	if err != nil {
		return err
	}
	for _, name := range names {
		p := path.Join(root, name)
		if isOwnTempName(name) {
			f.leftover(FsckLeftoverTemp, p, "temporary file of an interrupted write", f.remove(ctx, p))
			continue
		}
		if dir, err := f.isDir(ctx, p); err != nil {
			return err
		} else if dir {
			f.stray(ctx, p, "a directory where a tag belongs")
			continue
		}
		f.report.Tags++
		b, err := f.s.driver.GetContent(ctx, p)
		if err != nil {
			return err
		}
		d, err := digest.Parse(string(b))
		if err != nil {
			f.problem(FsckTagInvalid, p, fmt.Sprintf("holds %q", fsckTruncate(string(b))), f.remove(ctx, p))
			continue
		}
		m, ok := manifests[d]
		switch {
		case !ok:
			f.problem(FsckTagDangling, p, "manifest "+string(d)+" is not in the repository", f.remove(ctx, p))
		case m.broken != "":
			f.problem(FsckTagDangling, p, "manifest "+string(d)+" is broken", f.remove(ctx, p))
		}
	}
	return nil
}
