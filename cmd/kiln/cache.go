package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"kiln/config"
	"kiln/metrics"
	"kiln/storage"
	"kiln/ui"
)

// adminCachePath reads the pull-through cache's usage (GET) and runs an
// eviction (POST, ?dry_run=1).
const adminCachePath = "/kiln/v1/cache"

// fillSpacing is the least time between two evictions that fills start:
// under a stream of fills, one plan of the store at a time, not one a blob.
const fillSpacing = 250 * time.Millisecond

// freeSpaceInterval is how often the store's free space is checked
// against cache.min_free: a statfs, cheap enough to notice a filling disk
// before a push gets 507.
const freeSpaceInterval = 10 * time.Second

// cacheKeeper keeps the pull-through cache within the cache section: every
// check interval it evicts what is unused or over budget and collects what
// that let go; when the store's filesystem has less than min_free free it
// does so at once, taking as much as it takes.
type cacheKeeper struct {
	store     *storage.Store
	pulls     *storage.PullLog
	cfg       config.Cache
	gc        config.GC
	root      string // the filesystem store's directory; "" for other stores
	logger    *slog.Logger
	record    metrics.CacheState // nil: no metrics
	observeGC gcObserver
	now       func() time.Time
	// statfs reads the store's filesystem; nil: unix.Statfs (tests fake a
	// full disk with it).
	statfs func(path string, st *unix.Statfs_t) error
	// fills hears that the cache stored something (see filled); make it
	// with room for one.
	fills chan struct{}
	// filledTotal counts the bytes the cache stored; with the last measure
	// it estimates the cache's size between walks of the store.
	filledTotal atomic.Int64

	running sync.Mutex // one eviction at a time
	mu      sync.Mutex
	last    *storage.EvictReport
	// measured and measuredAt are the last status, which the web page
	// shows for statusMaxAge rather than walk the store at every view.
	measured   *cacheStatus
	measuredAt time.Time
	// size is the cache's own bytes at the last measure (sizeKnown is false
	// before one), and filledAt filledTotal when that measure started.
	size, filledAt int64
	sizeKnown      bool
}

// statusMaxAge is how long the web page shows a measure of the cache.
const statusMaxAge = 30 * time.Second

// cacheStatus is what GET /kiln/v1/cache answers.
type cacheStatus struct {
	storage.CacheUsage
	Budget       int64                `json:"budget"`              // cache.max_size in bytes; 0: none
	MaxUnused    string               `json:"maxUnused,omitempty"` // cache.max_unused
	MinFree      int64                `json:"minFree,omitempty"`   // cache.min_free in bytes
	Free         int64                `json:"free,omitempty"`      // free bytes of the store's filesystem
	LastEviction *storage.EvictReport `json:"lastEviction,omitempty"`
}

// space returns the size and free bytes of the store's filesystem; false
// for a store that is not on one.
func (k *cacheKeeper) space() (total, free int64, ok bool) {
	if k.root == "" {
		return 0, 0, false
	}
	statfs := k.statfs
	if statfs == nil {
		statfs = unix.Statfs
	}
	var st unix.Statfs_t
	if err := statfs(k.root, &st); err != nil {
		return 0, 0, false
	}
	return int64(st.Blocks) * int64(st.Bsize), int64(st.Bavail) * int64(st.Bsize), true
}

// limits are cache.max_size and cache.min_free in bytes, and the free
// bytes now (0 when unknown).
func (k *cacheKeeper) limits() (budget, minFree, free int64) {
	total, free, _ := k.space()
	return k.cfg.MaxSize.Of(total), k.cfg.MinFree.Of(total), free
}

// status measures the cache.
func (k *cacheKeeper) status(ctx context.Context) (*cacheStatus, error) {
	filledAt := k.filledTotal.Load()
	usage, err := k.store.CacheUsage(ctx, k.pulls)
	if err != nil {
		return nil, err
	}
	k.sized(usage.Bytes, filledAt)
	budget, minFree, free := k.limits()
	st := &cacheStatus{CacheUsage: usage, Budget: budget, MinFree: minFree, Free: free}
	if k.cfg.MaxUnused > 0 {
		st.MaxUnused = k.cfg.MaxUnused.String()
	}
	k.mu.Lock()
	st.LastEviction = k.last
	k.measured, k.measuredAt = st, k.now()
	k.mu.Unlock()
	if k.record != nil {
		k.record(usage.Bytes, budget, 0, 0)
	}
	return st, nil
}

// page is the cache as the storage page shows it: measured at most
// statusMaxAge ago.
func (k *cacheKeeper) page(ctx context.Context) (ui.CacheUsage, error) {
	k.mu.Lock()
	st, at := k.measured, k.measuredAt
	k.mu.Unlock()
	if st == nil || k.now().Sub(at) > statusMaxAge {
		var err error
		if st, err = k.status(ctx); err != nil {
			return ui.CacheUsage{}, err
		}
		at = k.now()
	}
	return ui.CacheUsage{Images: st.Images, Bytes: st.Bytes, Shared: st.Shared, Budget: st.Budget, Measured: at}, nil
}

// evict runs one eviction (reclaim: bytes the store is short of), then,
// if it took anything, a collection that frees its blobs.
func (k *cacheKeeper) evict(ctx context.Context, trigger string, dryRun bool, reclaim int64) (*storage.EvictReport, error) {
	k.running.Lock()
	defer k.running.Unlock()
	budget, _, _ := k.limits()
	log := k.logger.With(slog.String("trigger", trigger), slog.Bool("dry_run", dryRun))
	started := k.now()
	filledAt := k.filledTotal.Load()
	r, err := k.store.Evict(ctx, k.pulls, storage.EvictOptions{MaxSize: budget, MaxUnused: k.cfg.MaxUnused, Reclaim: reclaim, Now: started, DryRun: dryRun})
	if err != nil {
		log.Error("cache eviction failed", slog.Any("err", err))
		return r, err
	}
	if !dryRun {
		k.sized(r.After.Bytes, filledAt)
	}
	var freed int64
	for _, e := range r.Evicted {
		freed += e.Bytes
		log.Info("cache: evicting", slog.String("repo", e.Repo), slog.String("digest", string(e.Digest)),
			slog.Any("tags", e.Tags), slog.Int64("bytes", e.Bytes), slog.Time("last_used", e.LastUsed), slog.String("why", e.Why))
	}
	log.Info("cache: "+storage.FormatBytes(r.After.Bytes)+" held alone, "+storage.FormatBytes(r.After.Shared)+" shared with pushed images",
		slog.Int("images", r.After.Images), slog.Int("evicted", len(r.Evicted)), slog.Int64("evicted_bytes", freed),
		slog.Int64("budget", budget), slog.Duration("took", k.now().Sub(started)))
	if !dryRun {
		k.mu.Lock()
		k.last = r
		k.mu.Unlock()
		if k.record != nil {
			k.record(r.After.Bytes, budget, len(r.Evicted), freed)
		}
		if len(r.Evicted) > 0 {
			runGC(ctx, k.store, storage.GCOptions{Grace: k.gc.Grace, DeleteUntagged: k.gc.DeleteUntagged}, k.logger, "cache", k.observeGC)
		}
	}
	return r, nil
}

// sized records a measure of the cache: bytes, in a walk of the store
// that started when filledTotal was filledAt.
func (k *cacheKeeper) sized(bytes, filledAt int64) {
	k.mu.Lock()
	k.size, k.filledAt, k.sizeKnown = bytes, filledAt, true
	k.mu.Unlock()
}

// overBudget reports whether the cache may be over budget: the last
// measure plus what was filled since (a blob filled during that measure's
// walk counts twice, which only makes the next walk come sooner). Before
// any measure it may be.
func (k *cacheKeeper) overBudget(budget int64) bool {
	k.mu.Lock()
	size, filledAt, known := k.size, k.filledAt, k.sizeKnown
	k.mu.Unlock()
	return !known || size+k.filledTotal.Load()-filledAt > budget
}

// filled is the cache's fill observer: with a budget, an eviction follows
// soon, so the cache goes over it by what arrives meanwhile, not by what
// arrives until the next check. A fill that leaves the cache within its
// budget, by the estimate, costs no walk of the store.
func (k *cacheKeeper) filled(repo string, bytes int64) {
	k.filledTotal.Add(bytes)
	select {
	case k.fills <- struct{}{}:
	default: // one is pending already
	}
}

// checkLoop evicts from the cache every check interval until ctx is
// done, the first one interval after start, as with garbage collection.
// In a cluster only one instance runs it.
func (k *cacheKeeper) checkLoop(ctx context.Context) {
	if !k.cfg.Enabled() {
		return
	}
	check := time.NewTicker(k.cfg.CheckInterval)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-check.C:
			k.evict(ctx, "schedule", false, 0)
		}
	}
}

// loop bounds the cache as it fills until ctx is done: an eviction soon
// after fills that may take it over budget, and at once when the store's
// free space is short (watched from the start). Every instance runs it:
// its own fills are what it hears of.
func (k *cacheKeeper) loop(ctx context.Context) {
	if !k.cfg.Enabled() {
		return
	}
	budget, minFree, _ := k.limits()
	k.logger.Info("cache bounded", slog.Int64("max_size", budget), slog.Duration("max_unused", k.cfg.MaxUnused),
		slog.Int64("min_free", minFree), slog.Duration("check_interval", k.cfg.CheckInterval))
	space := time.NewTicker(freeSpaceInterval)
	defer space.Stop()
	var lastFill time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.fills:
			if budget == 0 || !k.overBudget(budget) {
				continue
			}
			if wait := fillSpacing - time.Since(lastFill); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			lastFill = time.Now()
			k.evict(ctx, "fill", false, 0)
		case <-space.C:
			if _, minFree, free := k.limits(); minFree > 0 && free > 0 && free < minFree {
				k.logger.Warn("the store is low on space: evicting from the cache", slog.Int64("free", free), slog.Int64("min_free", minFree))
				k.evict(ctx, "low space", false, minFree-free)
			}
		}
	}
}

// handler serves GET /kiln/v1/cache (the usage, JSON) and POST
// /kiln/v1/cache[?dry_run=1] (one eviction, answered with its report).
func (k *cacheKeeper) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v any
		var err error
		switch r.Method {
		case http.MethodGet:
			v, err = k.status(r.Context())
		case http.MethodPost:
			dryRun, ok := dryRunParam(w, r)
			if !ok {
				return
			}
			v, err = k.evict(r.Context(), "api", dryRun, 0)
		default:
			w.Header().Set("Allow", "GET, POST")
			adminError(w, http.StatusMethodNotAllowed, "use GET or POST")
			return
		}
		if errors.Is(err, context.Canceled) {
			return // the client is gone
		}
		adminReply(w, v, err, nil)
	})
}
