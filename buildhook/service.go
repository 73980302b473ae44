package buildhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"kiln/buildhook/build"
	"kiln/buildhook/native"
	"kiln/storage"
)

// ServiceOptions configure a Service.
type ServiceOptions struct {
	Store *storage.Store
	// TagMoves is Store's tag-move listener (see TagMoves): the new
	// service attaches itself to it. Nil: moves reach the service only
	// through whoever calls its TagMoved.
	TagMoves    *TagMoves
	Rules       []*build.Rule
	Registry    string   // kiln's own host:port on loopback
	Hosts       []string // every name clients use for kiln (see RegistryHosts)
	Upstreams   []string // names of the mirrored registries (see UpstreamRef)
	Concurrency int
	Window      time.Duration
	Timeout     time.Duration
	Retries     int
	// Limits bound each build.
	Limits Limits
	// Retention bounds the records and logs of finished builds.
	Retention Retention
	// WorkDir is a directory private to this kiln where builders keep
	// what outlives one build (buildah's storage of the bases).
	WorkDir string
	// AutoRebase adopts images pushed with a base annotation naming a tag
	// of this registry: they are rebased when it moves (see autorebase.go).
	AutoRebase bool
	Logger     *slog.Logger
	// Builders overrides the builders by name (tests); nil means the real ones.
	Builders map[string]build.Builder
	// Self is how builders log in to and trust Registry (auth, TLS).
	Self build.SelfAccess
	// OnBuildDone, when set, is told of every build that ends: result is a
	// Status (succeeded, failed) or "interrupted" (cut off by shutdown and
	// left queued); ran is how long it ran, zero if it never started. It
	// feeds metrics without buildhook depending on them.
	OnBuildDone func(rule, result string, ran time.Duration)
	// OnStatus, when set, is told of every build that is queued, starts
	// or ends (webhooks listen here), synchronously.
	OnStatus func(StatusChange)
	// Shared, when set, keeps the build queue and the build records in
	// the database the instances of a cluster share (see SharedQueue);
	// logs stay in Store.
	Shared *SharedOptions
}

// SharedOptions put a Service's queue and records in a cluster's database.
type SharedOptions struct {
	Pool     *pgxpool.Pool
	Instance string // this instance's name in the cluster
	// Lease and Renew: see SharedQueueOptions.
	Lease, Renew time.Duration
}

// Service runs build-on-push: it turns tag moves into queued builds, runs
// them with the chosen builder, and keeps their records.
type Service struct {
	opts     ServiceOptions
	graph    *Graph // the configured rules; the queue's graph adds adopted images'
	queue    jobQueue
	auto     *autoRebase // nil unless ServiceOptions.AutoRebase
	records  *Records
	own      ownRecords // what queued wrote; empty in a cluster
	builders map[string]build.Builder
	log      *slog.Logger
	stopping atomic.Bool   // set when Start's context ends
	pruning  pruneSchedule // when a build's end prunes every rule (see pruneAfterBuild)
}

// NewService checks the rules' graph and prepares the queue; Start runs it.
func NewService(opts ServiceOptions) (*Service, error) {
	g, err := NewGraph(opts.Rules)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Minute
	}
	s := &Service{
		opts:     opts,
		graph:    g,
		builders: opts.Builders,
		log:      opts.Logger,
	}
	if s.builders == nil {
		s.builders = defaultBuilders(opts.Hosts, opts.Upstreams, opts.Limits, opts.WorkDir)
	}
	if sh := opts.Shared; sh != nil {
		s.records = newRecords(sharedRecords{pool: sh.Pool, logs: opts.Store})
		s.queue = NewSharedQueue(g, SharedQueueOptions{
			Pool: sh.Pool, Instance: sh.Instance, Concurrency: opts.Concurrency, Window: opts.Window,
			Lease: sh.Lease, Renew: sh.Renew, NewRecord: s.newRecord, Ended: s.ended, AdoptionsChanged: s.adoptionsChanged, Logger: opts.Logger,
		}, QueueHooks{Queued: s.announce, Updated: s.announce, Run: s.run, Done: s.done})
	} else {
		s.records = NewRecords(opts.Store)
		s.queue = NewQueue(g, opts.Concurrency, opts.Window, newBuildID, QueueHooks{
			Queued:  s.queued,
			Updated: s.queued,
			Run:     s.run,
			Done:    s.done,
		})
	}
	s.records.logLimit = opts.Limits.Log
	if opts.AutoRebase {
		s.auto = newAutoRebase(s)
	}
	if opts.TagMoves != nil {
		opts.TagMoves.service.Store(s)
	}
	return s, nil
}

// Graph returns the configured rules' graph.
func (s *Service) Graph() *Graph { return s.graph }

// RuleGraph is the graph builds run on: the configured rules, then the
// rules of adopted images (autorebase).
func (s *Service) RuleGraph() *Graph { return s.queue.Graph() }

// Adopted returns the images autorebase adopted, by image (nil when
// autorebase is off).
func (s *Service) Adopted() []Adoption {
	if s.auto == nil {
		return nil
	}
	return s.auto.list()
}

// Records returns the build records.
func (s *Service) Records() *Records { return s.records }

// TagMoved is the store's hook: a moved tag queues the rules built on it
// (adopted images' included); with autorebase, the pushed manifest is then
// read in the background for adoption. It never waits for either.
func (s *Service) TagMoved(m storage.TagMove) {
	s.queue.TagMoved(build.ImageRef{Repo: m.Repo, Tag: m.Tag}, m.To)
	if s.auto != nil {
		s.auto.moved(m) // adoption is read in the background
	}
}

// Trigger queues a build of rule by hand; force builds it even when
// nothing it reads changed since its last successful build.
func (s *Service) Trigger(rule string, force bool) (*build.Job, error) {
	return s.queue.Trigger(rule, build.Trigger{Reason: "manual", Force: force})
}

// maxRestarts is how many times kiln may stop while one build runs: a
// build that kills kiln (out of memory) would otherwise do it again at
// every start.
const maxRestarts = 2

// Start removes the spools of builds a dead kiln left, re-queues builds a
// previous run left queued or running (once: see maxRestarts), then
// starts the queue. Builds stop when ctx ends; Wait waits for them.
func (s *Service) Start(ctx context.Context) error {
	native.RemoveDeadSpools(s.log)
	var recs []*Record
	if s.opts.Shared == nil {
		// In a cluster, builds another instance left are taken over when
		// their claims run out (see SharedQueue), never at a start: the
		// instance that runs them may be alive.
		var err error
		if recs, err = s.records.List(ctx); err != nil {
			return err
		}
	}
	if s.auto != nil {
		if err := s.auto.load(ctx); err != nil {
			return err
		}
	}
	s.queue.Start(ctx)
	context.AfterFunc(ctx, func() { s.stopping.Store(true) })
	if s.auto != nil {
		s.auto.wg.Add(1)
		go s.auto.loop(ctx)
	}
	g := s.queue.Graph()
	for _, r := range recs {
		if r.Done() || g.Rule(r.Rule) == nil {
			continue
		}
		s.resume(ctx, r)
	}
	s.prune(ctx)
	return nil
}

// resume ends r, which a previous run left unfinished, and queues it again
// unless kiln stopped twice while it ran.
func (s *Service) resume(ctx context.Context, r *Record) {
	restarts := r.Restarts
	if r.Status == StatusRunning {
		restarts++ // a shutdown leaves builds queued: kiln died
	}
	now := time.Now().UTC()
	r.Status, r.Finished = StatusFailed, &now
	if restarts >= maxRestarts {
		r.Error = fmt.Sprintf("kiln stopped twice while this build ran (killed or crashed, possibly by the build itself); "+
			"not resumed again: trigger rule %s by hand once the cause is found", r.Rule)
		if err := s.records.Save(ctx, r); err != nil {
			s.log.Error("saving build record", "build", r.ID, "err", err)
		}
		s.log.Error("build not resumed: kiln stopped twice while it ran", "rule", r.Rule, "build", r.ID)
		return
	}
	t := build.Trigger{Digest: r.TriggerDigest, Reason: "resume", Restarts: restarts}
	t.Ref, _ = parseImageRef(r.TriggerRef)
	job, err := s.queue.Trigger(r.Rule, t)
	r.Error = "interrupted by a restart"
	if err == nil {
		r.Error += "; run again as build " + job.ID
	}
	if err := s.records.Save(ctx, r); err != nil {
		s.log.Error("saving build record", "build", r.ID, "err", err)
	}
	s.log.Info("build resumed after restart", "rule", r.Rule, "old", r.ID)
}

// Wait waits for running builds after Start's context ended.
func (s *Service) Wait() {
	s.queue.Wait()
	s.records.Wait()
	if s.auto != nil {
		s.auto.wg.Wait()
	}
}

// WaitIdle waits until no build is queued or running and, with
// autorebase, no pushed tag is waiting to be looked at for adoption.
func (s *Service) WaitIdle(ctx context.Context) error {
	for {
		if err := s.queue.WaitIdle(ctx); err != nil {
			return err
		}
		if s.auto == nil {
			return nil
		}
		select {
		case <-s.auto.Idle():
		case <-ctx.Done():
			return ctx.Err()
		}
		// Both were idle in turn; done unless adoption queued a build or
		// a build pushed since.
		select {
		case <-s.queue.Idle():
			select {
			case <-s.auto.Idle():
				return nil
			default:
			}
		default:
		}
	}
}

func (s *Service) queued(job *build.Job) {
	r := s.newRecord(job)
	if old, ok := s.own.get(job.ID); ok {
		r.Queued = old.Queued // a newer trigger
	} else if old, err := s.records.Get(context.Background(), job.ID); err == nil {
		r.Queued = old.Queued
	}
	if err := s.records.SaveQueued(context.Background(), r); err != nil {
		s.log.Error("saving build record", "build", job.ID, "err", err)
	}
	s.own.put(r)
	s.statusChanged(job, r)
}

// newRecord is the record of a job just queued.
func (s *Service) newRecord(job *build.Job) *Record {
	r := &Record{ID: job.ID, Rule: job.Rule.Name, Reason: job.Trigger.Reason, Status: StatusQueued, Queued: time.Now().UTC(),
		Restarts: job.Trigger.Restarts}
	if job.Trigger.Ref.Repo != "" {
		r.TriggerRef = job.Trigger.Ref.String()
		r.TriggerDigest = job.Trigger.Digest
	}
	return r
}

// announce tells of a job the shared queue saved with its record.
func (s *Service) announce(job *build.Job) {
	if s.opts.OnStatus == nil {
		return
	}
	r, err := s.records.Get(context.Background(), job.ID)
	if err != nil {
		s.log.Error("reading build record", "build", job.ID, "err", err)
		return
	}
	s.statusChanged(job, r)
}

// adoptionsChanged reads the adopted images again (another instance of
// the cluster changed them).
func (s *Service) adoptionsChanged() {
	if s.auto != nil {
		s.auto.reload()
	}
}

// ended tells of a build the shared queue ended (its instance's claim ran
// out).
func (s *Service) ended(job *build.Job, r *Record) {
	s.buildDone(job, r.Status, 0)
	s.statusChanged(job, r)
}

// update changes the record of build id, durably, and returns it, nil if
// it could not be read.
func (s *Service) update(id string, f func(*Record)) *Record {
	return s.change(id, f, s.records.Save)
}

// note changes the record of a running build without waiting for the
// disk (see Records.Note) and returns it, nil if it could not be read.
func (s *Service) note(id string, f func(*Record)) *Record {
	return s.change(id, f, s.records.Note)
}

// progress notes what a running build learnt in its record, which goes
// to the store with the build's log (see Records.NoteLater).
func (s *Service) progress(id string, f func(*Record)) *Record {
	return s.change(id, f, s.records.NoteLater)
}

func (s *Service) change(id string, f func(*Record), save func(context.Context, *Record) error) *Record {
	ctx := context.Background()
	r, own := s.own.get(id)
	if !own {
		var err error
		if r, err = s.records.Get(ctx, id); err != nil {
			s.log.Error("reading build record", "build", id, "err", err)
			return nil
		}
	}
	f(r)
	if err := save(ctx, r); err != nil {
		s.log.Error("saving build record", "build", id, "err", err)
	}
	if own {
		s.own.put(r)
	}
	return r
}

func (s *Service) done(job *build.Job, err error) {
	var ran time.Duration
	if err != nil && s.stopping.Load() {
		// Cut off by shutdown: left queued, so the next start runs it again.
		s.update(job.ID, func(r *Record) {
			r.Status, r.Error = StatusQueued, "interrupted by shutdown: "+err.Error()
			ran = sinceStarted(r, time.Now())
		})
		s.buildDone(job, "interrupted", ran)
		return
	}
	now := time.Now().UTC()
	result := StatusSucceeded
	switch {
	case errors.Is(err, errUnchanged):
		result, err = StatusUnchanged, nil
	case err != nil:
		result = StatusFailed
	}
	r := s.update(job.ID, func(r *Record) {
		r.Finished = &now
		r.Status = result
		if err != nil {
			r.Error = err.Error()
		}
		ran = sinceStarted(r, now)
	})
	s.buildDone(job, result, ran)
	s.statusChanged(job, r)
	switch result {
	case StatusFailed:
		s.log.Warn("build failed", "build", job.ID, "rule", job.Rule.Name, "err", err)
	case StatusUnchanged:
		s.log.Info("build unchanged: same inputs as the last success, no tag moved", "build", job.ID, "rule", job.Rule.Name)
	default:
		s.log.Info("build succeeded", "build", job.ID, "rule", job.Rule.Name)
	}
	s.pruneAfterBuild(context.Background(), job.Rule.Name)
}

func parseImageRef(s string) (build.ImageRef, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			return build.ImageRef{Repo: s[:i], Tag: s[i+1:]}, true
		}
		if s[i] == '/' {
			break
		}
	}
	return build.ImageRef{}, false
}
