package buildhook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
)

// ErrQueueStopped is returned by Trigger once the queue's context has ended.
var ErrQueueStopped = errors.New("build queue stopped")

// QueueHooks connect the queue to the service. Every hook gets its own
// copy of the job (its ID is stable across hooks).
type QueueHooks struct {
	// Queued is called when a job is created (status queued). Updated when
	// a queued job's trigger is replaced by a newer one (latest wins).
	// They are called one at a time, in order, from the dispatcher
	// goroutine (so after Start), and a job never starts before its
	// Queued/Updated calls have returned.
	Queued  func(*build.Job)
	Updated func(*build.Job)
	// Run builds the job; the queue calls it in a goroutine, at most
	// `concurrency` at once. The job is Run's to fill in (Registry,
	// Staging); Done gets the same pointer. Run should move the rule's tags
	// (which calls TagMoved) before it returns: rules built on this one are
	// held until it returns, so they build once, on the new image.
	Run func(ctx context.Context, job *build.Job) error
	// Done is called after Run returns (err is Run's error); also called
	// for a job that was cancelled before running (err is the context's
	// error).
	Done func(*build.Job, error)
}

// Queue turns triggers into jobs: one running and one queued job per rule
// at most, newer triggers replacing a queued job's, a concurrency limit
// across rules, jobs started in trigger order, and cascades that build each
// level once. Its graph may be replaced while it runs (SetGraph): the state
// of a rule (queued, running) follows its name.
type Queue struct {
	concurrency int
	window      time.Duration
	newID       func() string
	hooks       QueueHooks

	dispatch // its lock guards the fields below and idle: nothing queued or running (Done hooks included)
	g        *Graph
	states   map[string]*ruleState // by rule name; absent: nothing queued or running
	order    []*queuedJob          // queued jobs, oldest first: they start first-in first-out
	events   []hookEvent           // Queued/Updated calls not yet made
	running  int
	ids      uint64
}

type ruleState struct {
	queued  *queuedJob
	running bool // a job of the rule is in Run or Done
}

type queuedJob struct {
	job     build.Job
	readyAt time.Time // last trigger + window
}

type hookEvent struct {
	updated bool
	job     build.Job // as it was when the event happened
}

// NewQueue returns a queue over g's rules. concurrency (at least 1) bounds
// the builds running at once; window > 0 makes a queued job wait that long
// after its last trigger before it may start (bursts coalesce), 0 starts it
// at once. newID names jobs (nil: a counter).
func NewQueue(g *Graph, concurrency int, window time.Duration, newID func() string, hooks QueueHooks) *Queue {
	if concurrency < 1 {
		concurrency = 1
	}
	if window < 0 {
		window = 0
	}
	q := &Queue{
		g:           g,
		concurrency: concurrency,
		window:      window,
		newID:       newID,
		hooks:       hooks,
		states:      map[string]*ruleState{},
	}
	q.init()
	return q
}

// TagMoved queues the rules built on ref with a push trigger. It never
// waits for a build, nor for a hook. A rule that also builds on another
// rule affected by the same move is left for that rule's push, so each
// level of a cascade builds once. After the queue stopped, it does nothing.
func (q *Queue) TagMoved(ref build.ImageRef, d digest.Digest) {
	q.mu.Lock()
	rules := q.g.triggered(ref)
	if len(rules) == 0 || q.stopped {
		q.mu.Unlock()
		return
	}
	t := build.Trigger{Ref: ref, Digest: d, Reason: "push"}
	for _, i := range rules {
		q.enqueue(i, t)
	}
	q.mu.Unlock()
	q.signal()
}

// Graph returns the queue's current graph.
func (q *Queue) Graph() *Graph {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.g
}

// SetGraph replaces the queue's graph (rules added, removed or changed).
// A queued job of a rule still in g now builds g's version of it; one of a
// rule g lacks stays queued as it was. Running jobs are not touched.
func (q *Queue) SetGraph(g *Graph) {
	q.mu.Lock()
	q.g = g
	for _, qj := range q.order {
		if r := g.Rule(qj.job.Rule.Name); r != nil {
			qj.job.Rule = r
		}
	}
	q.mu.Unlock()
	q.signal()
}

// Trigger queues a build of the named rule (manual trigger, resume), or
// updates the trigger of its queued job, and returns the job. An empty
// Reason means "manual".
func (q *Queue) Trigger(rule string, t build.Trigger) (*build.Job, error) {
	if t.Reason == "" {
		t.Reason = "manual"
	}
	q.mu.Lock()
	i, ok := q.g.byName[rule]
	if !ok {
		q.mu.Unlock()
		return nil, fmt.Errorf("unknown build rule %q", rule)
	}
	if q.stopped {
		q.mu.Unlock()
		return nil, ErrQueueStopped
	}
	job := q.enqueue(i, t).job
	q.mu.Unlock()
	q.signal()
	return &job, nil
}

// enqueue records a trigger of rule i: a new queued job, or the queued
// job's trigger replaced. q.mu is held.
func (q *Queue) enqueue(i int, t build.Trigger) *queuedJob {
	rule := q.g.rules[i]
	st := q.state(rule.Name)
	readyAt := time.Now().Add(q.window)
	if qj := st.queued; qj != nil {
		t.Force = t.Force || qj.job.Trigger.Force // a forced rebuild stays forced
		qj.job.Trigger = t
		qj.readyAt = readyAt
		q.events = append(q.events, hookEvent{updated: true, job: qj.job})
		return qj
	}
	qj := &queuedJob{
		job:     build.Job{ID: q.id(), Rule: rule, Trigger: t},
		readyAt: readyAt,
	}
	st.queued = qj
	q.order = append(q.order, qj)
	q.events = append(q.events, hookEvent{job: qj.job})
	q.idle.busy()
	return qj
}

// state returns the state of the named rule, created if need be. q.mu is
// held.
func (q *Queue) state(name string) *ruleState {
	st := q.states[name]
	if st == nil {
		st = &ruleState{}
		q.states[name] = st
	}
	return st
}

// forget drops the state of a rule with nothing queued or running. q.mu is
// held.
func (q *Queue) forget(name string) {
	if st := q.states[name]; st != nil && st.queued == nil && !st.running {
		delete(q.states, name)
	}
}

func (q *Queue) id() string {
	if q.newID != nil {
		return q.newID()
	}
	q.ids++
	return "job-" + strconv.FormatUint(q.ids, 10)
}

// Start starts the dispatcher. Jobs run with ctx; once it ends no job
// starts, queued jobs are cancelled (Done with ctx's error) and Wait waits
// for running ones. Start is a no-op the second time.
func (q *Queue) Start(ctx context.Context) {
	if q.start(1) {
		go q.loop(ctx)
	}
}

// Counts returns the number of queued and running jobs.
func (q *Queue) Counts() (queued, running int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order), q.running
}

// updateIdle closes the idle channel when nothing is queued or running.
// q.mu is held.
func (q *Queue) updateIdle() {
	if len(q.order) == 0 && q.running == 0 {
		q.idle.idle()
	}
}

func (q *Queue) loop(ctx context.Context) {
	defer q.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		// Hooks first, so that no job starts before its Queued and
		// Updated calls have returned: the check that none are pending
		// and the start happen under one lock.
		q.mu.Lock()
		if evs := q.events; len(evs) > 0 {
			q.events = nil
			q.mu.Unlock()
			q.deliver(evs)
			continue
		}
		if ctx.Err() != nil {
			q.mu.Unlock()
			q.shutdown(ctx.Err())
			return
		}
		wait := q.startReady(ctx)
		q.mu.Unlock()
		if wait > 0 {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
		case <-q.kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// deliver makes Queued/Updated calls: in order for each job, the jobs'
// at once. A tag move queues every rule built on the tag, and each hook
// writes its job's record durably: one after another, their disk syncs
// would delay every build of the move.
func (q *Queue) deliver(evs []hookEvent) {
	var jobs []string
	byJob := map[string][]hookEvent{}
	for _, ev := range evs {
		if _, ok := byJob[ev.job.ID]; !ok {
			jobs = append(jobs, ev.job.ID)
		}
		byJob[ev.job.ID] = append(byJob[ev.job.ID], ev)
	}
	var wg sync.WaitGroup
	for _, id := range jobs {
		wg.Go(func() {
			for _, ev := range byJob[id] {
				hook := q.hooks.Queued
				if ev.updated {
					hook = q.hooks.Updated
				}
				if hook != nil {
					job := ev.job
					hook(&job)
				}
			}
		})
	}
	wg.Wait()
}

// startReady starts the queued jobs that may start, oldest first, and
// returns how long until a job held by the window may start (0: none).
// q.mu is held.
func (q *Queue) startReady(ctx context.Context) time.Duration {
	now := time.Now()
	var wait time.Duration
	for k := 0; k < len(q.order) && q.running < q.concurrency; {
		qj := q.order[k]
		name := qj.job.Rule.Name
		st := q.state(name)
		if st.running || q.held(name) {
			k++
			continue
		}
		if now.Before(qj.readyAt) {
			if d := qj.readyAt.Sub(now); wait == 0 || d < wait {
				wait = d
			}
			k++
			continue
		}
		q.order = slices.Delete(q.order, k, k+1)
		st.queued = nil
		st.running = true
		q.running++
		job := qj.job
		q.wg.Add(1)
		go q.run(ctx, name, &job)
	}
	return wait
}

// held reports whether a rule that the named rule builds on (transitively)
// has a job queued or running: its job then waits, as that build's push
// will trigger it again. q.mu is held.
func (q *Queue) held(name string) bool {
	i, ok := q.g.byName[name]
	if !ok {
		return false
	}
	for _, a := range q.g.ancestors[i] {
		if st := q.states[q.g.rules[a].Name]; st != nil && (st.queued != nil || st.running) {
			return true
		}
	}
	return false
}

func (q *Queue) run(ctx context.Context, name string, job *build.Job) {
	defer q.wg.Done()
	err := runHook(ctx, q.hooks.Run, job)
	if q.hooks.Done != nil {
		q.hooks.Done(job, err)
	}
	q.mu.Lock()
	q.state(name).running = false
	q.forget(name)
	q.running--
	q.updateIdle()
	q.mu.Unlock()
	q.signal()
}

// shutdown cancels the queued jobs once ctx ended.
func (q *Queue) shutdown(cause error) {
	q.mu.Lock()
	q.stopped = true // no more events nor jobs
	cancelled := slices.Clone(q.order)
	evs := q.events
	q.events = nil
	q.mu.Unlock()
	q.deliver(evs) // Queued before Done
	for _, qj := range cancelled {
		if q.hooks.Done != nil {
			job := qj.job
			q.hooks.Done(&job, cause)
		}
	}
	q.mu.Lock()
	for _, qj := range cancelled {
		name := qj.job.Rule.Name
		if st := q.states[name]; st != nil && st.queued == qj {
			st.queued = nil
		}
		q.forget(name)
	}
	q.order = nil
	q.updateIdle()
	q.mu.Unlock()
}
