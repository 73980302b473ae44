package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// quarantineRoot is where Fsck with Repair moves what it takes out of the
// store: /quarantine/<alg>/<hex> for corrupt blobs, /quarantine/stray/<path>
// for files that do not belong where they were. Nothing reads it.
const quarantineRoot = "/quarantine"

// Kinds of FsckIssue. Problems are things wrong with the store; leftovers
// are harmless remains of writes interrupted by a crash, invisible to
// clients, which Repair removes.
const (
	// Problems.
	FsckBlobCorrupt        = "blob-corrupt"           // the bytes do not hash to the blob's name; repair: quarantine
	FsckStray              = "stray"                  // a file or directory that does not belong there; repair: quarantine
	FsckLayerDangling      = "layer-dangling"         // a _layers link to a missing or corrupt blob; repair: remove the link
	FsckLinkContent        = "link-content"           // a _layers link that does not hold its digest; repair: rewrite it
	FsckManifestDangling   = "manifest-dangling"      // a _manifests link to a missing or corrupt blob; repair: remove the link
	FsckManifestInvalid    = "manifest-invalid"       // the manifest does not parse as its link's media type; repair: remove the link
	FsckManifestBlob       = "manifest-blob-missing"  // a config or layer the repository cannot serve; repair: remove the manifest's link
	FsckManifestUnlinked   = "manifest-blob-unlinked" // a config or layer the store holds but the repository has no link to; repair: link it
	FsckManifestChild      = "manifest-child-missing" // an index child the repository does not hold, or that is broken; repair: remove the index's link
	FsckTagInvalid         = "tag-invalid"            // a tag that does not hold a digest; repair: remove it
	FsckTagDangling        = "tag-dangling"           // a tag to a manifest the repository does not hold, or that is broken; repair: remove it
	FsckReferrerInvalid    = "referrer-invalid"       // a referrer entry that is unreadable or not about its subject; repair: remove it
	FsckReferrerMissing    = "referrer-missing"       // a manifest with a subject but no referrer entry; repair: write it
	FsckUploadCorrupt      = "upload-corrupt"         // an upload session whose state or data is damaged; repair: remove it
	FsckLeftoverTemp       = "temp-file"              // a PutContent temporary file ("*.<uuid>.tmp")
	FsckLeftoverReferrer   = "referrer-orphan"        // a referrer entry of a manifest the repository does not hold
	FsckLeftoverUpload     = "upload-orphan"          // an upload directory without state (a monolithic upload cut short)
	FsckLeftoverCommitted  = "upload-committed"       // a session whose data was already moved into the blob store
	FsckLeftoverUploadIdle = "upload-expired"         // a session idle for longer than the upload expiry
)

// FsckOptions tune Fsck.
type FsckOptions struct {
	// Repair quarantines corrupt blobs and stray files, removes dangling
	// links, tags and broken manifests' links, rewrites what can be
	// rewritten, and removes leftovers. Run it on a stopped store only.
	Repair bool
	// Workers re-hash blobs in parallel; zero means 4.
	Workers int
}

// FsckIssue is one thing Fsck found.
type FsckIssue struct {
	Kind   string // one of the Fsck* kinds
	Path   string // the store path it is about
	Detail string
	Action string // what Repair did about it; "" when nothing was done
}

func (i FsckIssue) String() string {
	s := fmt.Sprintf("%s %s: %s", i.Kind, i.Path, i.Detail)
	if i.Action != "" {
		s += " [" + i.Action + "]"
	}
	return s
}

// FsckProgress tells how far a Fsck is; Total is 0 while unknown.
type FsckProgress struct {
	Phase string // "blobs", "repositories", "uploads"
	Done  int
	Total int
	Bytes int64 // bytes re-hashed so far (phase "blobs")
}

// FsckReport is what Fsck found and did.
type FsckReport struct {
	Blobs        int   // blobs re-hashed
	BlobBytes    int64 // their total size
	Repositories int
	LayerLinks   int
	Manifests    int
	Tags         int
	Referrers    int
	Uploads      int         // upload session directories
	Problems     []FsckIssue // what is wrong
	Leftovers    []FsckIssue // harmless remains of interrupted writes
}

// Remaining returns the problems Repair did not fix (all of them without
// Repair).
func (r *FsckReport) Remaining() int {
	n := 0
	for _, p := range r.Problems {
		if p.Action == "" {
			n++
		}
	}
	return n
}

// Fsck checks the whole store: it re-hashes every blob, checks every link,
// manifest (parsed, with everything it references), tag, referrer entry and
// upload session, and with opts.Repair fixes what it found (see the kinds).
// progress, when not nil, is called now and then from the calling
// goroutine's phases. Run it on a stopped store: a registry writing
// meanwhile shows up as false problems, and Repair could race with it.
func (s *Store) Fsck(ctx context.Context, opts FsckOptions, progress func(FsckProgress)) (*FsckReport, error) {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if progress == nil {
		progress = func(FsckProgress) {}
	}
	f := &fsck{s: s, opts: opts, report: &FsckReport{}, good: map[digest.Digest]bool{}, corrupt: map[digest.Digest]bool{}, missing: map[digest.Digest]bool{}}
	if err := f.blobs(ctx, progress); err != nil {
		return f.report, err
	}
	repos, err := f.findRepos(ctx, reposRoot, "")
	if err != nil {
		return f.report, err
	}
	sort.Strings(repos)
	f.report.Repositories = len(repos)
	tick := newFsckTicker(progress, "repositories", len(repos))
	for i, repo := range repos {
		if err := ctx.Err(); err != nil {
			return f.report, err
		}
		if err := f.repo(ctx, repo); err != nil {
			return f.report, fmt.Errorf("repository %s: %w", repo, err)
		}
		tick.update(i+1, 0, false)
	}
	tick.update(len(repos), 0, true)
	if err := f.uploads(ctx, progress); err != nil {
		return f.report, err
	}
	return f.report, nil
}

type fsck struct {
	s       *Store
	opts    FsckOptions
	report  *FsckReport
	good    map[digest.Digest]bool // blobs stored under their own digest
	corrupt map[digest.Digest]bool // blobs whose bytes do not match
	missing map[digest.Digest]bool // blobs the store does not have
}

// fsckTicker rate-limits progress reports.
type fsckTicker struct {
	f     func(FsckProgress)
	phase string
	total int
	last  time.Time
}

func newFsckTicker(f func(FsckProgress), phase string, total int) *fsckTicker {
	f(FsckProgress{Phase: phase, Total: total})
	return &fsckTicker{f: f, phase: phase, total: total, last: time.Now()}
}

func (t *fsckTicker) update(done int, bytes int64, final bool) {
	if !final && time.Since(t.last) < 250*time.Millisecond {
		return
	}
	t.last = time.Now()
	t.f(FsckProgress{Phase: t.phase, Done: done, Total: t.total, Bytes: bytes})
}

func (f *fsck) problem(kind, p, detail string, repair func() (string, error)) {
	f.add(&f.report.Problems, kind, p, detail, repair)
}

func (f *fsck) leftover(kind, p, detail string, repair func() (string, error)) {
	f.add(&f.report.Leftovers, kind, p, detail, repair)
}

func (f *fsck) add(list *[]FsckIssue, kind, p, detail string, repair func() (string, error)) {
	is := FsckIssue{Kind: kind, Path: p, Detail: detail}
	if f.opts.Repair && repair != nil {
		action, err := repair()
		if err != nil {
			is.Detail += "; repair failed: " + err.Error()
		} else {
			is.Action = action
		}
	}
	*list = append(*list, is)
}

// remove is a repair that deletes p.
func (f *fsck) remove(ctx context.Context, p string) func() (string, error) {
	return func() (string, error) {
		if err := f.s.deleteContent(ctx, p); err != nil && !isNotFound(err) {
			return "", err
		}
		return "removed", nil
	}
}

// quarantine is a repair that moves p under /quarantine/rel, without
// replacing what an earlier run put there.
func (f *fsck) quarantine(ctx context.Context, p, rel string) func() (string, error) {
	return func() (string, error) {
		base := path.Join(quarantineRoot, rel)
		dst := base
		for n := 1; ; n++ {
			ok, err := f.s.exists(ctx, dst)
			if err != nil {
				return "", err
			}
			if !ok {
				break
			}
			dst = fmt.Sprintf("%s.%d", base, n)
		}
		if err := f.s.prepareDir(dst); err != nil {
			return "", err
		}
		if err := f.s.driver.Move(ctx, p, dst); err != nil {
			return "", err
		}
		if f.s.localRoot != "" {
			if err := syncDir(filepath.Dir(f.s.localPath(dst))); err != nil {
				return "", err
			}
			if err := syncDir(filepath.Dir(f.s.localPath(p))); err != nil {
				return "", err
			}
		}
		return "quarantined to " + dst, nil
	}
}

func (f *fsck) stray(ctx context.Context, p, detail string) {
	f.problem(FsckStray, p, detail, f.quarantine(ctx, p, path.Join("stray", p)))
}

// list returns the names in directory p; a missing directory is empty.
func (f *fsck) list(ctx context.Context, p string) ([]string, error) {
	entries, err := f.s.driver.List(ctx, p)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, path.Base(e))
	}
	sort.Strings(names)
	return names, nil
}

func (f *fsck) isDir(ctx context.Context, p string) (bool, error) {
	fi, err := f.s.driver.Stat(ctx, p)
	if err != nil {
		return false, err
	}
	return fi.IsDir(), nil
}

// ---------------------------------------------------------------- blobs

func fsckAlgorithm(name string) bool {
	switch digest.Algorithm(name) {
	case digest.SHA256, digest.SHA512:
		return true
	}
	return false
}

// blobs lists /blobs/<alg>/<hex[0:2]>/<hex> and re-hashes every blob.
func (f *fsck) blobs(ctx context.Context, progress func(FsckProgress)) error {
	var found []digest.Digest
	algs, err := f.list(ctx, blobsRoot)
	if err != nil {
		return err
	}
	for _, alg := range algs {
		ap := path.Join(blobsRoot, alg)
		if dir, err := f.isDir(ctx, ap); err != nil {
			return err
		} else if !dir || !fsckAlgorithm(alg) {
			f.stray(ctx, ap, "not a digest algorithm directory")
			continue
		}
		prefixes, err := f.list(ctx, ap)
		if err != nil {
			return err
		}
		for _, prefix := range prefixes {
			pp := path.Join(ap, prefix)
			if dir, err := f.isDir(ctx, pp); err != nil {
				return err
			} else if !dir || len(prefix) != 2 || strings.Trim(prefix, "0123456789abcdef") != "" {
				f.stray(ctx, pp, "not a two-hex-digit prefix directory")
				continue
			}
			names, err := f.list(ctx, pp)
			if err != nil {
				return err
			}
			for _, name := range names {
				p := path.Join(pp, name)
				if isTempName(name) {
					f.leftover(FsckLeftoverTemp, p, "temporary file of an interrupted write", f.remove(ctx, p))
					continue
				}
				d := digest.NewDigestFromEncoded(digest.Algorithm(alg), name)
				if d.Validate() != nil || !strings.HasPrefix(name, prefix) {
					f.stray(ctx, p, "not named by a digest under its prefix")
					continue
				}
				if dir, err := f.isDir(ctx, p); err != nil {
					return err
				} else if dir {
					f.stray(ctx, p, "a directory where a blob belongs")
					continue
				}
				found = append(found, d)
			}
		}
	}

	type result struct {
		d    digest.Digest
		size int64
		got  digest.Digest
		err  error
	}
	work := make(chan digest.Digest)
	results := make(chan result)
	var wg sync.WaitGroup
	for range f.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				size, got, err := f.hash(ctx, d)
				results <- result{d, size, got, err}
			}
		}()
	}
	go func() {
		defer close(work)
		for _, d := range found {
			select {
			case work <- d:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()

	tick := newFsckTicker(progress, "blobs", len(found))
	var firstErr error
	for r := range results {
		switch {
		case r.err != nil:
			if firstErr == nil {
				firstErr = fmt.Errorf("blob %s: %w", r.d, r.err)
			}
		case r.got != r.d:
			f.corrupt[r.d] = true
			f.problem(FsckBlobCorrupt, blobPath(r.d), fmt.Sprintf("content of %d bytes hashes to %s", r.size, r.got),
				f.quarantine(ctx, blobPath(r.d), path.Join(string(r.d.Algorithm()), r.d.Encoded())))
		default:
			f.good[r.d] = true
		}
		f.report.Blobs++
		f.report.BlobBytes += r.size
		tick.update(f.report.Blobs, f.report.BlobBytes, false)
	}
	tick.update(f.report.Blobs, f.report.BlobBytes, true)
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	// Problems are reported in path order whatever the workers' order.
	sort.SliceStable(f.report.Problems, func(i, j int) bool { return f.report.Problems[i].Path < f.report.Problems[j].Path })
	return firstErr
}

func (f *fsck) hash(ctx context.Context, d digest.Digest) (int64, digest.Digest, error) {
	rc, err := f.s.OpenBlob(ctx, d, 0)
	if err != nil {
		return 0, "", err
	}
	defer rc.Close()
	h := d.Algorithm().Hash()
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	n, err := io.CopyBuffer(h, fsckCtxReader{ctx, rc}, *buf)
	if err != nil {
		return n, "", err
	}
	return n, digest.NewDigest(d.Algorithm(), h), nil
}

type fsckCtxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r fsckCtxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// blobState says why a blob cannot be used, "" when it can. A blob the
// walk of /blobs did not find is asked for once through HasBlob, which
// knows where else the store may keep it (the garbage collector's trash),
// and re-hashed if it turns up.
func (f *fsck) blobState(ctx context.Context, d digest.Digest) (string, error) {
	switch {
	case f.good[d]:
		return "", nil
	case f.corrupt[d]:
		return "blob " + string(d) + " is corrupt", nil
	case f.missing[d] || d.Validate() != nil:
		return "blob " + string(d) + " is missing", nil
	}
	ok, err := f.s.HasBlob(ctx, d)
	if err != nil {
		return "", err
	}
	if !ok {
		f.missing[d] = true
		return f.blobState(ctx, d)
	}
	size, got, err := f.hash(ctx, d)
	if err != nil {
		return "", err
	}
	f.report.Blobs++
	f.report.BlobBytes += size
	if got != d {
		f.corrupt[d] = true
		f.problem(FsckBlobCorrupt, blobPath(d), fmt.Sprintf("content of %d bytes hashes to %s", size, got),
			f.quarantine(ctx, blobPath(d), path.Join(string(d.Algorithm()), d.Encoded())))
	} else {
		f.good[d] = true
	}
	return f.blobState(ctx, d)
}

// ---------------------------------------------------------------- repositories

var fsckRepoDirs = map[string]bool{"_layers": true, "_manifests": true, "_tags": true, "_referrers": true}

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
		switch {
		case fsckRepoDirs[c] && dir:
			isRepo = true
		case !dir:
			f.stray(ctx, cp, "a file among repositories")
		case strings.HasPrefix(c, "_"):
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
		if isTempName(name) {
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

// ---------------------------------------------------------------- uploads

func (f *fsck) uploads(ctx context.Context, progress func(FsckProgress)) error {
	ids, err := f.list(ctx, uploadsRoot)
	if err != nil {
		return err
	}
	tick := newFsckTicker(progress, "uploads", len(ids))
	for i, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f.upload(ctx, id); err != nil {
			return fmt.Errorf("upload %s: %w", id, err)
		}
		tick.update(i+1, 0, false)
	}
	tick.update(len(ids), 0, true)
	return nil
}

func (f *fsck) upload(ctx context.Context, id string) error {
	dir := path.Join(uploadsRoot, id)
	if isDir, err := f.isDir(ctx, dir); err != nil {
		return err
	} else if !isDir || uuid.Validate(id) != nil {
		f.stray(ctx, dir, "not an upload session directory")
		return nil
	}
	f.report.Uploads++
	names, err := f.list(ctx, dir)
	if err != nil {
		return err
	}
	hasState, hasData := false, false
	for _, name := range names {
		p := path.Join(dir, name)
		switch {
		case name == "state":
			hasState = true
		case name == "data":
			hasData = true
		case isTempName(name):
			f.leftover(FsckLeftoverTemp, p, "temporary file of an interrupted write", f.remove(ctx, p))
		default:
			f.stray(ctx, p, "not part of an upload session")
		}
	}
	var dataSize int64
	if hasData {
		fi, err := f.s.driver.Stat(ctx, uploadDataPath(id))
		if err != nil {
			return err
		}
		dataSize = fi.Size()
	}
	if !hasState {
		if hasData {
			f.leftover(FsckLeftoverUpload, dir, "data without state: a monolithic upload cut short", f.remove(ctx, dir))
		} else {
			f.leftover(FsckLeftoverUpload, dir, "empty session directory", f.remove(ctx, dir))
		}
		return nil
	}
	b, err := f.s.driver.GetContent(ctx, uploadStatePath(id))
	if err != nil {
		return err
	}
	var st uploadState
	if err := json.Unmarshal(b, &st); err != nil {
		f.problem(FsckUploadCorrupt, uploadStatePath(id), "state is not JSON: "+err.Error(), f.remove(ctx, dir))
		return nil
	}
	if _, err := restoreHash(&st); err != nil {
		f.problem(FsckUploadCorrupt, uploadStatePath(id), err.Error(), f.remove(ctx, dir))
		return nil
	}
	if st.Size < 0 || st.Repo == "" {
		f.problem(FsckUploadCorrupt, uploadStatePath(id), fmt.Sprintf("state names repository %q and size %d", st.Repo, st.Size), f.remove(ctx, dir))
		return nil
	}
	switch {
	case st.Size > 0 && !hasData:
		f.leftover(FsckLeftoverCommitted, dir, "the data was moved into the blob store by a finished upload", f.remove(ctx, dir))
	case dataSize < st.Size:
		f.problem(FsckUploadCorrupt, uploadDataPath(id), fmt.Sprintf("%d bytes, the session acknowledged %d", dataSize, st.Size), f.remove(ctx, dir))
	case time.Since(st.UpdatedAt) > f.s.uploadExpiry:
		f.leftover(FsckLeftoverUploadIdle, dir, "idle since "+st.UpdatedAt.Format(time.RFC3339), f.remove(ctx, dir))
	}
	return nil
}

func fsckTruncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
