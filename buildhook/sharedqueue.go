package buildhook

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
)

// SharedQueue is the build queue of kiln instances that share one
// PostgreSQL database (cluster.postgres). It keeps Queue's rules — at most
// one running and one queued job per rule, a newer trigger replacing the
// queued one's, the window, trigger order, each level of a cascade built
// once — in the builds table, so that any instance takes a trigger and
// exactly one instance runs each job.
//
// A running job is leased to its instance, which renews the lease while
// the job runs. When a lease runs out (its instance was killed, or lost the
// database), whichever instance notices first ends the job and queues it
// again. Queue and claim changes are serialised by one transaction-scoped
// advisory lock: they are a few per build, and one lock keeps the
// coalescing and cascade checks simple and exact.
type SharedQueue struct {
	opts  SharedQueueOptions
	hooks QueueHooks

	dispatch // its lock guards the fields below; idle: the last look found nothing queued or running in the cluster
	g        *Graph
	running  int          // jobs this instance runs
	unsent   []unsentMove // tag moves waiting for the database, oldest first
	queued   int          // queued jobs cluster-wide, at the last look
	others   int          // jobs other instances run, at the last look
}

// SharedQueueOptions configure a SharedQueue.
type SharedQueueOptions struct {
	Pool        *pgxpool.Pool
	Instance    string // this instance's name (cluster.Member's ID)
	Concurrency int    // jobs this instance runs at once
	Window      time.Duration
	// Lease is how long a claim on a running job lasts unless renewed;
	// Renew is how often this instance renews its claims and looks for
	// claims that ran out. Lease should be several Renews.
	Lease, Renew time.Duration
	NewID        func() string
	// NewRecord is the record a job is queued with, written in the same
	// transaction as the job: no instance can start a job without one.
	NewRecord func(*build.Job) *Record
	// Ended, when set, is told of a record the queue itself ended (a
	// job whose instance stopped renewing its claim), after the commit.
	Ended func(*build.Job, *Record)
	// AdoptionsChanged, when set, is told that another instance adopted
	// an image or dropped one (see AnnounceAdoptions).
	AdoptionsChanged func()
	Logger           *slog.Logger
}

// sharedQueueLock is the advisory lock key that serialises changes to the
// queue ("kilq" in ASCII).
const sharedQueueLock = 0x6b696c71

// notifyChannel is where every queue change is announced, so that idle
// instances look at once instead of at their next Renew.
const notifyChannel = "kiln_builds"

// adoptionsChannel is where a change to the adopted images is announced:
// the rules they add must be in every instance's graph, as any instance
// may take the push of their base.
const adoptionsChannel = "kiln_adoptions"

// NewSharedQueue returns a queue over g's rules kept in opts.Pool's
// database. hooks are Queue's; Queued and Updated are told after the
// job's commit (its record is already saved), Run and Done on the
// instance that runs it.
func NewSharedQueue(g *Graph, opts SharedQueueOptions, hooks QueueHooks) *SharedQueue {
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	if opts.Window < 0 {
		opts.Window = 0
	}
	if opts.Renew <= 0 {
		opts.Renew = 10 * time.Second
	}
	if opts.Lease <= 0 {
		opts.Lease = 3 * opts.Renew
	}
	if opts.NewID == nil {
		opts.NewID = newBuildID
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	q := &SharedQueue{opts: opts, hooks: hooks, g: g}
	q.init()
	return q
}

// TagMoved queues the rules built on ref, as Queue.TagMoved does, in one
// transaction: when it returns the jobs are in the database, where any
// instance may run them. It waits for the database, never for a build.
func (q *SharedQueue) TagMoved(ref build.ImageRef, d digest.Digest) {
	q.mu.Lock()
	g := q.g
	stopped := q.stopped
	q.mu.Unlock()
	triggered := g.triggered(ref)
	if len(triggered) == 0 || stopped {
		return
	}
	t := build.Trigger{Ref: ref, Digest: d, Reason: "push"}
	rules := g.list(triggered)
	q.mu.Lock()
	behind := len(q.unsent) > 0
	if behind { // after the moves still waiting, in order
		q.unsent = append(q.unsent, unsentMove{rules, t})
		q.busy()
	}
	q.mu.Unlock()
	if behind {
		return
	}
	if _, err := q.enqueue(context.Background(), rules, t); err != nil {
		q.opts.Logger.Error("queueing builds: the database did not take them; retrying until it does", "trigger", ref.String(), "err", err)
		q.mu.Lock()
		q.unsent = append(q.unsent, unsentMove{rules, t})
		q.busy()
		q.mu.Unlock()
	}
}

// unsentMove is a tag move whose jobs the database did not take.
type unsentMove struct {
	rules   []*build.Rule
	trigger build.Trigger
}

// sendUnsent queues the tag moves the database did not take, in order,
// until one fails again: a push answered while the database was away
// still builds once it is back.
func (q *SharedQueue) sendUnsent(ctx context.Context) {
	for {
		q.mu.Lock()
		if len(q.unsent) == 0 {
			q.mu.Unlock()
			return
		}
		m := q.unsent[0]
		q.mu.Unlock()
		if _, err := q.enqueue(ctx, m.rules, m.trigger); err != nil {
			return
		}
		q.mu.Lock()
		q.unsent = q.unsent[1:]
		q.mu.Unlock()
		q.opts.Logger.Info("queued builds the database did not take before", "trigger", m.trigger.Ref.String())
	}
}

// Trigger queues a build of the named rule, or updates the trigger of its
// queued job, and returns the job.
func (q *SharedQueue) Trigger(rule string, t build.Trigger) (*build.Job, error) {
	if t.Reason == "" {
		t.Reason = "manual"
	}
	q.mu.Lock()
	r := q.g.Rule(rule)
	stopped := q.stopped
	q.mu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("unknown build rule %q", rule)
	}
	if stopped {
		return nil, ErrQueueStopped
	}
	jobs, err := q.enqueue(context.Background(), []*build.Rule{r}, t)
	if err != nil {
		return nil, err
	}
	return jobs[0], nil
}

// Graph returns the queue's current graph.
func (q *SharedQueue) Graph() *Graph {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.g
}

// SetGraph replaces the queue's graph. Queued jobs name their rule: they
// build the version of it their instance's graph holds when they start.
func (q *SharedQueue) SetGraph(g *Graph) {
	q.mu.Lock()
	q.g = g
	q.mu.Unlock()
	q.signal()
}

// Start starts the dispatcher, which claims jobs this instance may run,
// renews its claims and takes over jobs whose claims ran out. Jobs run
// with ctx; once it ends no job starts here, and jobs cut off by it go back
// to the queue for another instance. Start is a no-op the second time.
func (q *SharedQueue) Start(ctx context.Context) {
	if q.start(2) {
		go q.listen(ctx)
		go q.loop(ctx)
	}
}

// Counts returns the jobs queued in the cluster and running anywhere, at
// the dispatcher's last look (and this instance's, which it knows now).
func (q *SharedQueue) Counts() (queued, running int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued, q.others + q.running
}

// busy marks the queue as not idle (a job was queued here). q.mu is held.
func (q *SharedQueue) busy() { q.idle.busy() }

// lookedAt records what the last look found. q.mu is held.
func (q *SharedQueue) lookedAt(queued, others int) {
	q.queued, q.others = queued, others
	if queued > 0 || others > 0 || q.running > 0 || len(q.unsent) > 0 {
		q.idle.busy()
	} else {
		q.idle.idle()
	}
}

// loop claims jobs when woken (a change here or announced by another
// instance, a window ending) and renews claims every Renew.
func (q *SharedQueue) loop(ctx context.Context) {
	defer q.wg.Done()
	renew := time.NewTicker(q.opts.Renew)
	defer renew.Stop()
	window := time.NewTimer(time.Hour)
	window.Stop()
	for {
		if ctx.Err() != nil {
			q.mu.Lock()
			q.stopped = true
			q.mu.Unlock()
			return
		}
		wait, err := q.claim(ctx)
		if err != nil && ctx.Err() == nil {
			q.opts.Logger.Warn("build queue: claiming builds", "err", err)
		}
		if wait > 0 {
			window.Reset(wait)
		}
		select {
		case <-ctx.Done():
		case <-q.kick:
		case <-window.C:
		case <-renew.C:
			q.sendUnsent(ctx)
			q.renewAndTakeOver(ctx)
		}
		window.Stop()
	}
}

// run runs one claimed job, then ends it in the database or, when ctx
// ended first (a shutdown), hands it back to the queue.
func (q *SharedQueue) run(ctx context.Context, job *build.Job) {
	defer q.wg.Done()
	err := runHook(ctx, q.hooks.Run, job)
	if q.hooks.Done != nil {
		q.hooks.Done(job, err)
	}
	// The row must change even when ctx is gone: that is the shutdown.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var ferr error
	if err != nil && ctx.Err() != nil {
		ferr = q.handBack(dctx, job)
	} else {
		ferr = q.finish(dctx, job)
	}
	if ferr != nil {
		// Its claim will run out and another instance will end it.
		q.opts.Logger.Error("build queue: ending a build", "build", job.ID, "err", ferr)
	}
	q.mu.Lock()
	q.running--
	q.mu.Unlock()
	q.signal()
}

// listen wakes the dispatcher on every change another instance announces.
// A lost connection is retried; meanwhile Renew's ticks still look.
func (q *SharedQueue) listen(ctx context.Context) {
	defer q.wg.Done()
	for ctx.Err() == nil {
		err := q.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		q.opts.Logger.Warn("build queue: listening for changes", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(q.opts.Renew):
		}
	}
}

func (q *SharedQueue) listenOnce(ctx context.Context) error {
	pooled, err := q.opts.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A LISTENing session is not one to give back to the pool.
	conn := pooled.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel+"; LISTEN "+adoptionsChannel); err != nil {
		return err
	}
	q.signal() // changes before LISTEN were not heard
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Channel == adoptionsChannel {
			if q.opts.AdoptionsChanged != nil { // this instance's own too: reading them again is harmless
				q.opts.AdoptionsChanged()
			}
			continue
		}
		q.signal()
	}
}

// AnnounceAdoptions tells the other instances that the adopted images
// changed, so that they read them again.
func (q *SharedQueue) AnnounceAdoptions(ctx context.Context) error {
	_, err := q.opts.Pool.Exec(ctx, "SELECT pg_notify($1, '')", adoptionsChannel)
	return err
}
