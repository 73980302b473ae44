package storage

import (
	"context"
	"fmt"
	"path"
	"sort"

	"github.com/opencontainers/go-digest"
)

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
