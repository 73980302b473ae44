package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
)

// Garbage collection.
//
// GC marks, then sweeps, with no store-wide lock: pushes and pulls go on
// while it runs. What keeps a racing push whole:
//
//   - Grace. Nothing whose file (blob, _layers link, manifest link, tag) was
//     written or refreshed less than Grace before the collection started is
//     collected: a push in flight has uploaded its layers (blob and link
//     written at once) but not yet its manifest.
//   - Touch before check. A manifest PUT first refreshes the links of the
//     blobs (and index children) it references (TouchBlobLink,
//     TouchManifestLink), then checks that they exist. A blob pushed long
//     ago, found by the client's HEAD and so not uploaded again, thus gets a
//     young link before the PUT relies on it. The HEAD itself (BlobSize)
//     already refreshes a link older than a quarter of the grace period (at
//     most a minute), so the blob outlives a collection that starts between
//     the HEAD and the PUT.
//   - Trash, then re-check. The sweep does not delete a blob outright: it
//     moves it to /trash/<alg>/<hex>, then walks the repositories again and
//     moves back every trashed blob that a link younger than the grace
//     period, or a manifest (or tag) written since the mark, now reaches.
//     Only then are the rest deleted. Untagged manifests' links go through
//     the same trash (/trash/_repositories/...).
//   - Reads restore. Every read of a blob that misses it (HasBlob,
//     BlobSize, OpenBlob, manifest reads) moves it back from the trash
//     first, so a reader racing the sweep never sees it missing; a manifest
//     PUT whose existence check lands between the move to trash and the
//     delete gets its blob back that way.
//
// A PUT that checks after the delete fails with MANIFEST_BLOB_UNKNOWN (the
// client pushes the blob again); one that checked before the move to trash
// has touched the links, which the re-check sees. The one case left is a
// push slower than the grace period: from its HEAD or upload to its manifest
// PUT (it then fails, safely, as above), or from its manifest link to its
// tag write, plus the collection's own run (an untagged manifest is then
// deleted under a tag). Keep Grace far above push times (the default is an
// hour). Ages are measured with the store's clock: on S3 against a probe
// object, with a second of slack for its whole-second times.

// ErrGCRunning is returned by GC while another collection of the same store
// is running in this process.
var ErrGCRunning = errors.New("garbage collection already running")

// GCOptions tune a collection.
type GCOptions struct {
	// DryRun reports what would be freed and changes nothing.
	DryRun bool
	// Grace protects everything written or refreshed less than this long
	// before the collection started (see above). Zero protects nothing by age.
	Grace time.Duration
	// DeleteUntagged also deletes manifests no tag reaches (directly, as an
	// index child, or as a referrer of a kept manifest).
	DeleteUntagged bool
}

// GC phases, as GCProgress.Phase reports them.
const (
	GCPhaseRecover = "recover" // putting back what an interrupted collection left in the trash
	GCPhaseMark    = "mark"
	GCPhaseSweep   = "sweep"   // untagged manifests, then blobs, into the trash
	GCPhaseRecheck = "recheck" // what was claimed meanwhile comes back
	GCPhaseDelete  = "delete"
	GCPhaseDone    = "done"
)

// GCProgress is what GC reports as it goes: counts so far.
type GCProgress struct {
	Phase        string
	Repositories int   // repositories marked
	Manifests    int   // manifests marked (kept)
	Blobs        int   // blobs marked (kept)
	Scanned      int   // blobs looked at by the sweep
	SweptM       int   // manifests swept (deleted, or would be on a dry run)
	SweptB       int   // blobs swept
	Bytes        int64 // bytes of the blobs swept
}

func (p GCProgress) String() string {
	switch p.Phase {
	case GCPhaseRecover:
		return "recover: putting back what an interrupted collection left in the trash"
	case GCPhaseMark:
		return fmt.Sprintf("mark: %d repositories, %d manifests, %d blobs", p.Repositories, p.Manifests, p.Blobs)
	case GCPhaseSweep:
		return fmt.Sprintf("sweep: %d blobs scanned; %d manifests, %d blobs (%s) to sweep", p.Scanned, p.SweptM, p.SweptB, FormatBytes(p.Bytes))
	case GCPhaseRecheck:
		return fmt.Sprintf("recheck: %d manifests, %d blobs in the trash; putting back what pushes claimed meanwhile", p.SweptM, p.SweptB)
	case GCPhaseDelete:
		return fmt.Sprintf("delete: %d manifests, %d blobs, %s", p.SweptM, p.SweptB, FormatBytes(p.Bytes))
	}
	return p.Phase
}

// maxReportedItems caps the lists of swept things in a GCReport.
const maxReportedItems = 1000

// GCReport says what a collection found and freed. On a dry run the swept
// counts are what would have been freed.
type GCReport struct {
	DryRun         bool          `json:"dryRun"`
	DeleteUntagged bool          `json:"deleteUntagged"`
	Grace          time.Duration `json:"-"`
	Started        time.Time     `json:"started"`
	Duration       time.Duration `json:"-"`

	Repositories    int `json:"repositories"`
	ManifestsMarked int `json:"manifestsMarked"` // manifests kept (counted once per repository)
	BlobsMarked     int `json:"blobsMarked"`     // blobs a kept manifest references (or is)
	BlobsYoung      int `json:"blobsYoung"`      // unreferenced blobs kept by the grace period

	ManifestsSwept int   `json:"manifestsSwept"` // untagged manifests deleted
	BlobsSwept     int   `json:"blobsSwept"`
	BytesFreed     int64 `json:"bytesFreed"`
	LinksSwept     int   `json:"linksSwept"` // _layers links to swept blobs

	// Put back from the trash because a push claimed them during the sweep.
	ManifestsRestored int `json:"manifestsRestored"`
	BlobsRestored     int `json:"blobsRestored"`
	// Put back at the start: left in the trash by an interrupted collection.
	TrashRecovered int `json:"trashRecovered"`

	// What was swept, "repo@digest" and digests, at most 1000 of each.
	SweptManifests []string        `json:"sweptManifests,omitempty"`
	SweptBlobs     []digest.Digest `json:"sweptBlobs,omitempty"`
}

// MarshalJSON adds the durations, as Go duration strings and in seconds.
func (r *GCReport) MarshalJSON() ([]byte, error) {
	type plain GCReport
	return json.Marshal(struct {
		*plain
		Grace           string  `json:"grace"`
		Duration        string  `json:"duration"`
		DurationSeconds float64 `json:"durationSeconds"`
	}{(*plain)(r), r.Grace.String(), r.Duration.String(), r.Duration.Seconds()})
}

// String is the one-line summary, e.g. "marked 12 manifests, 40 blobs;
// swept 3 manifests, 9 blobs, 1.2 MiB in 35ms".
func (r *GCReport) String() string {
	verb := "swept"
	if r.DryRun {
		verb = "would sweep"
	}
	s := fmt.Sprintf("marked %d manifests, %d blobs; %s %d manifests, %d blobs, %s in %s",
		r.ManifestsMarked, r.BlobsMarked, verb, r.ManifestsSwept, r.BlobsSwept, FormatBytes(r.BytesFreed), r.Duration.Round(time.Millisecond))
	if r.BlobsYoung > 0 {
		s += fmt.Sprintf("; %d unreferenced blobs within grace", r.BlobsYoung)
	}
	if n := r.BlobsRestored + r.ManifestsRestored; n > 0 {
		s += fmt.Sprintf("; %d claimed by pushes during the sweep and kept", n)
	}
	return s
}

// FormatBytes renders n in binary units: "512 B", "1.2 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// defaultLinkRefreshAge is how old a _layers link gets before a read of the
// blob through it refreshes it, until a collection tells the grace period.
const defaultLinkRefreshAge = time.Minute

// SetGCGrace tells the store the grace period collections use, so that
// reads refresh links often enough even in a process that never collects
// itself (another instance on the same store does). Call it at start.
func (s *Store) SetGCGrace(grace time.Duration) {
	if grace > 0 {
		s.gcGrace.Store(int64(grace))
	}
}

// linkRefreshAge is how old a _layers link may be before BlobSize refreshes
// it: a quarter of the grace period of the last collection, at most a
// minute. A link read within the grace period is then always younger than
// it, and a blob's link is rewritten at most once per that age.
func (s *Store) linkRefreshAge() time.Duration {
	age := defaultLinkRefreshAge
	if g := time.Duration(s.gcGrace.Load()); g >= 0 {
		age = min(age, g/4)
	}
	return age
}

// GC collects garbage: it marks every manifest reachable from a tag (index
// children, referrers of kept manifests, transitively; with
// !opts.DeleteUntagged every manifest) and every blob they reference, then
// deletes untagged manifests (opts.DeleteUntagged only), unreferenced blobs
// and the _layers links to them. Nothing younger than opts.Grace is
// collected; see the comment at the top of gc.go for how it stays safe
// while the registry serves pushes. progress, when not nil, is called from
// the calling goroutine with counts as the collection goes.
func (s *Store) GC(ctx context.Context, opts GCOptions, progress func(GCProgress)) (*GCReport, error) {
	if !s.gcRunning.TryLock() {
		return nil, ErrGCRunning
	}
	defer s.gcRunning.Unlock()
	if progress == nil {
		progress = func(GCProgress) {}
	}
	s.gcGrace.Store(int64(opts.Grace))
	g := &gc{
		s:        s,
		opts:     opts,
		progress: progress,
		report:   &GCReport{DryRun: opts.DryRun, DeleteUntagged: opts.DeleteUntagged, Grace: opts.Grace, Started: time.Now().UTC()},
	}
	err := g.run(ctx)
	g.report.Duration = time.Since(g.report.Started)
	if err != nil {
		return g.report, err
	}
	g.tell(GCPhaseDone, true)
	return g.report, nil
}

// gc is one collection.
type gc struct {
	s        *Store
	opts     GCOptions
	progress func(GCProgress)
	report   *GCReport
	cutoff   time.Time // files modified after this are young

	idx    *gcIndex
	marked *gcMarker

	trashedBlobs     map[digest.Digest]int64        // in the trash, with their size
	trashedManifests map[gcRepoDigest]*trashedEntry // links of untagged manifests in the trash
	dangling         []digest.Digest                // linked from _layers, but not in /blobs at the sweep

	phase    string
	lastTell time.Time
	scanned  int
}

// tell reports progress, at most every 100ms unless force.
func (g *gc) tell(phase string, force bool) {
	if phase != g.phase {
		g.phase, force = phase, true
	}
	if !force && time.Since(g.lastTell) < 100*time.Millisecond {
		return
	}
	g.lastTell = time.Now()
	p := GCProgress{Phase: phase, Scanned: g.scanned, SweptM: g.report.ManifestsSwept, SweptB: g.report.BlobsSwept, Bytes: g.report.BytesFreed}
	if g.marked != nil {
		p.Repositories, p.Manifests, p.Blobs = g.marked.repos, g.marked.manifests, len(g.marked.blobs)
	}
	g.progress(p)
}

func (g *gc) run(ctx context.Context) (err error) {
	if !g.opts.DryRun {
		if err := g.recoverTrash(ctx); err != nil {
			return fmt.Errorf("gc: recovering the trash: %w", err)
		}
	}
	now, precision, err := g.s.storeClock(ctx)
	if err != nil {
		return fmt.Errorf("gc: reading the store's clock: %w", err)
	}
	g.cutoff = now.Add(-g.opts.Grace - precision)

	g.tell(GCPhaseMark, true)
	if g.idx, err = g.s.scanRepositories(ctx); err != nil {
		return fmt.Errorf("gc: listing repositories: %w", err)
	}
	g.marked = newGCMarker(g.s)
	if err := g.mark(ctx); err != nil {
		return fmt.Errorf("gc: mark: %w", err)
	}
	g.report.Repositories = len(g.idx.repos)
	g.tell(GCPhaseMark, true)

	// From here on, whatever went to the trash goes back on any error.
	g.trashedBlobs = map[digest.Digest]int64{}
	g.trashedManifests = map[gcRepoDigest]*trashedEntry{}
	defer func() {
		if err != nil {
			g.putBackAll(context.WithoutCancel(ctx))
		}
	}()

	g.tell(GCPhaseSweep, true)
	if g.opts.DeleteUntagged {
		if err := g.sweepManifests(ctx); err != nil {
			return fmt.Errorf("gc: sweeping manifests: %w", err)
		}
	}
	if err := g.sweepBlobs(ctx); err != nil {
		return fmt.Errorf("gc: sweeping blobs: %w", err)
	}
	g.tell(GCPhaseSweep, true)
	g.report.ManifestsMarked = g.marked.manifests
	g.report.BlobsMarked = len(g.marked.blobs)
	if g.opts.DryRun {
		return nil
	}

	if g.s.sweptHook != nil {
		g.s.sweptHook()
	}
	g.tell(GCPhaseRecheck, true)
	if err := g.recheck(ctx); err != nil {
		return fmt.Errorf("gc: re-checking: %w", err)
	}
	g.tell(GCPhaseDelete, true)
	if err := g.deleteTrashed(ctx); err != nil {
		return fmt.Errorf("gc: deleting: %w", err)
	}
	g.report.ManifestsMarked = g.marked.manifests
	g.report.BlobsMarked = len(g.marked.blobs)
	return nil
}

// storeClock returns the time now as the store's modification times tell
// it, and their precision. Files on S3 carry the server's clock, in whole
// seconds: the collector measures ages against a probe object it writes,
// and counts a file as young for the extra second it cannot tell apart, so
// neither clock skew nor truncation can make a young file look old.
func (s *Store) storeClock(ctx context.Context) (time.Time, time.Duration, error) {
	return s.files.clock(ctx)
}
