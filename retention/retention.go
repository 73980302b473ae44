package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"kiln/storage"
)

// Store is what retention reads and deletes; *storage.Store is one.
type Store interface {
	Repositories(ctx context.Context) ([]string, error)
	IsProxied(ctx context.Context, repo string) (proxied, exists bool, err error)
	Tags(ctx context.Context, repo string) ([]string, error)
	ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error)
	// TagAge is when the tag was last pushed.
	TagAge(ctx context.Context, repo, tag string) (time.Time, error)
	// ManifestLinks are the repository's manifests and when each was last pushed.
	ManifestLinks(ctx context.Context, repo string) (map[digest.Digest]time.Time, error)
	GetManifest(ctx context.Context, repo string, d digest.Digest) (*storage.Manifest, error)
	DeleteTag(ctx context.Context, repo, tag string) error
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
}

var _ Store = (*storage.Store)(nil)

// Pulls tells when a repository's manifests were last pulled;
// *storage.PullLog is one.
type Pulls interface {
	LastPulled(ctx context.Context, repo string) (map[digest.Digest]time.Time, error)
}

// Ref names a tag.
type Ref struct{ Repo, Tag string }

// Options configure a Runner.
type Options struct {
	Store    Store
	Policies []Policy
	// Pulls, when set, counts pulls as use; without it tags and
	// manifests age from their push alone.
	Pulls Pulls
	// Protected returns the tags never to delete: those build rules
	// produce and those rules and adopted images are built on. It is
	// asked at every run, as adoptions come and go.
	Protected func() []Ref
	// Transient, when set, names tags retention neither counts nor
	// deletes: the staging tags of builds running now.
	Transient func(tag string) bool
	// Now is the clock.
	Now func() time.Time
	// Logger gets a line per deletion; nil discards them.
	Logger *slog.Logger
}

// ErrRunning: a run was asked for while another was running.
var ErrRunning = errors.New("a retention run is already running")

// Runner runs the policies over a store, one run at a time.
type Runner struct {
	opts    Options
	running sync.Mutex
}

// New returns a Runner; Options.Store and Options.Now must be set.
func New(opts Options) *Runner {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{opts: opts}
}

// Run plans what the policies delete in every pushed repository and,
// unless dryRun, deletes it. Before deleting, each repository is planned
// again and only what both plans agree on goes: a tag pushed or pulled
// meanwhile stays. The error is about reading the store, and comes with
// the report of what was deleted before it; a deletion that fails is
// counted in Report.Failed and named in its entry.
func (r *Runner) Run(ctx context.Context, dryRun bool) (*Report, error) {
	if !r.running.TryLock() {
		return nil, ErrRunning
	}
	defer r.running.Unlock()
	now := r.opts.Now()
	report := &Report{DryRun: dryRun, Started: now, Tags: []Deletion{}, Manifests: []Deletion{}, Protected: []Deletion{}}
	protected := map[Ref]bool{}
	if r.opts.Protected != nil {
		for _, ref := range r.opts.Protected() {
			protected[ref] = true
		}
	}
	err := r.run(ctx, dryRun, now, protected, report)
	report.Duration = r.opts.Now().Sub(now)
	return report, err
}

func (r *Runner) run(ctx context.Context, dryRun bool, now time.Time, protected map[Ref]bool, report *Report) error {
	repos, err := r.opts.Store.Repositories(ctx)
	if err != nil {
		return fmt.Errorf("listing repositories: %w", err)
	}
	for _, repo := range repos {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := policyFor(r.opts.Policies, repo)
		if p == nil {
			continue
		}
		proxied, exists, err := r.opts.Store.IsProxied(ctx, repo)
		if err != nil {
			return fmt.Errorf("repository %s: %w", repo, err)
		}
		if proxied {
			report.Mirrors++
			continue
		}
		if !exists {
			continue // deleted meanwhile
		}
		report.Repositories++
		plan, err := r.planRepo(ctx, repo, p, protected, now)
		if err != nil {
			return err
		}
		report.Protected = append(report.Protected, plan.protected...)
		if dryRun {
			report.Tags = append(report.Tags, plan.tags...)
			report.Manifests = append(report.Manifests, plan.manifests...)
			for _, d := range slices.Concat(plan.tags, plan.manifests) {
				r.log(ctx, "retention: would delete", d)
			}
			continue
		}
		if len(plan.tags) == 0 && len(plan.manifests) == 0 {
			continue
		}
		if err := r.apply(ctx, repo, p, protected, now, plan, report); err != nil {
			return err
		}
	}
	return nil
}

// apply deletes plan's tags, then its manifests, each only if a fresh
// plan still deletes it.
func (r *Runner) apply(ctx context.Context, repo string, p *Policy, protected map[Ref]bool, now time.Time, plan *repoPlan, report *Report) error {
	fresh, err := r.planRepo(ctx, repo, p, protected, now)
	if err != nil {
		return err
	}
	for _, d := range plan.tags {
		if !planned(fresh.tags, d) {
			d.Kept = "the tag was pushed, pulled or deleted since it was planned"
		} else if d.Error = errString(r.opts.Store.DeleteTag(ctx, repo, d.Tag)); d.Error == "" {
			report.TagsDeleted++
			r.log(ctx, "retention: deleted", d)
		}
		report.Tags = append(report.Tags, r.failed(ctx, d, report))
	}
	if len(plan.manifests) == 0 {
		return nil
	}
	// Again, now that the tags are gone: what they reached is untagged.
	if fresh, err = r.planRepo(ctx, repo, p, protected, now); err != nil {
		return err
	}
	for _, d := range plan.manifests {
		if !planned(fresh.manifests, d) {
			d.Kept = "the manifest was pushed, pulled or tagged since it was planned"
		} else if d.Error = errString(r.opts.Store.DeleteManifest(ctx, repo, d.Digest)); d.Error == "" {
			report.ManifestsDeleted++
			r.log(ctx, "retention: deleted", d)
		}
		report.Manifests = append(report.Manifests, r.failed(ctx, d, report))
	}
	return nil
}

// failed counts and logs d if its deletion failed.
func (r *Runner) failed(ctx context.Context, d Deletion, report *Report) Deletion {
	if d.Error != "" {
		report.Failed++
		r.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "retention: deletion failed", attrs(d, slog.String("err", d.Error))...)
	}
	return d
}

// planned reports whether plan deletes the same tag (or manifest) as d,
// pointing to the same manifest.
func planned(plan []Deletion, d Deletion) bool {
	for _, p := range plan {
		if p.Tag == d.Tag && p.Digest == d.Digest {
			return true
		}
	}
	return false
}

func (r *Runner) log(ctx context.Context, msg string, d Deletion) {
	r.opts.Logger.LogAttrs(ctx, slog.LevelInfo, msg, attrs(d)...)
}

func attrs(d Deletion, more ...slog.Attr) []slog.Attr {
	a := []slog.Attr{slog.String("kind", d.Kind()), slog.String("repository", d.Repository)}
	if d.Tag != "" {
		a = append(a, slog.String("tag", d.Tag))
	}
	a = append(a, slog.String("digest", string(d.Digest)), slog.String("reason", d.Reason))
	return append(a, more...)
}

func errString(err error) string {
	if err == nil || errors.Is(err, storage.ErrTagUnknown) || errors.Is(err, storage.ErrManifestUnknown) {
		return "" // gone already: what was wanted
	}
	return err.Error()
}
