package buildhook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// dg is a test digest.
func dg(s string) digest.Digest { return digest.FromString(s) }

// recorder records what the queue's hooks see.
type recorder struct {
	t  *testing.T
	fn func(ctx context.Context, job *Job) error // the build; nil: succeed at once

	mu         sync.Mutex
	log        []string // "queued|updated|run|end|done <rule> <id>"
	runs       []Job    // in start order
	done       map[string]error
	active     map[string]int // rule -> running builds
	violations []string

	cur, max atomic.Int32
	ids      atomic.Int64
}

func newRecorder(t *testing.T, fn func(ctx context.Context, job *Job) error) *recorder {
	return &recorder{t: t, fn: fn, done: map[string]error{}, active: map[string]int{}}
}

func (r *recorder) add(format string, a ...any) {
	r.mu.Lock()
	r.log = append(r.log, fmt.Sprintf(format, a...))
	r.mu.Unlock()
}

func (r *recorder) hooks() QueueHooks {
	return QueueHooks{
		Queued:  func(j *Job) { r.add("queued %s %s", j.Rule.Name, j.ID) },
		Updated: func(j *Job) { r.add("updated %s %s", j.Rule.Name, j.ID) },
		Run: func(ctx context.Context, j *Job) error {
			r.mu.Lock()
			r.log = append(r.log, "run "+j.Rule.Name+" "+j.ID)
			r.runs = append(r.runs, *j)
			r.active[j.Rule.Name]++
			if r.active[j.Rule.Name] > 1 {
				r.violations = append(r.violations, "two builds of "+j.Rule.Name+" at once")
			}
			r.mu.Unlock()
			if n := r.cur.Add(1); n > r.max.Load() {
				// only this goroutine's increments race; CAS loop for max
				for {
					m := r.max.Load()
					if n <= m || r.max.CompareAndSwap(m, n) {
						break
					}
				}
			}
			var err error
			if r.fn != nil {
				err = r.fn(ctx, j)
			}
			r.cur.Add(-1)
			r.mu.Lock()
			r.active[j.Rule.Name]--
			r.log = append(r.log, "end "+j.Rule.Name+" "+j.ID)
			r.mu.Unlock()
			return err
		},
		Done: func(j *Job, err error) {
			r.mu.Lock()
			r.log = append(r.log, "done "+j.Rule.Name+" "+j.ID)
			if _, dup := r.done[j.ID]; dup {
				r.violations = append(r.violations, "Done twice for "+j.ID)
			}
			r.done[j.ID] = err
			r.mu.Unlock()
		},
	}
}

func (r *recorder) newID() string { return fmt.Sprintf("j%d", r.ids.Add(1)) }

// runsOf returns the runs of rule, in order.
func (r *recorder) runsOf(rule string) []Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Job
	for _, j := range r.runs {
		if j.Rule.Name == rule {
			out = append(out, j)
		}
	}
	return out
}

func (r *recorder) runOrder() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, j := range r.runs {
		out = append(out, j.Rule.Name)
	}
	return out
}

func (r *recorder) logCopy() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

func (r *recorder) check() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range r.violations {
		r.t.Error(v)
	}
}

// startQueue starts q and stops it at the end of the test.
func startQueue(t *testing.T, q *Queue) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	q.Start(ctx)
	t.Cleanup(func() {
		cancel()
		q.Wait()
	})
	return cancel
}

func waitIdle(t *testing.T, q *Queue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.WaitIdle(ctx); err != nil {
		t.Fatalf("queue not idle: %v", err)
	}
}

// recv receives from ch or fails the test (a timeout only to fail, not to
// time anything).
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func mustGraph(t *testing.T, rules ...*Rule) *Graph {
	t.Helper()
	g, err := NewGraph(rules)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestQueueCoalescesWhileRunning(t *testing.T) {
	g := mustGraph(t,
		rule("app", []string{"app:1"}, "base:1"),
		rule("probe", []string{"probe:1"}, "probe-base:1"),
	)
	started := make(chan *Job, 10)
	release := make(chan struct{})
	rec := newRecorder(t, func(ctx context.Context, j *Job) error {
		started <- j
		if j.Rule.Name == "probe" {
			return nil
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	q := NewQueue(g, 4, 0, rec.newID, rec.hooks())
	startQueue(t, q)

	q.TagMoved(ref("base:1"), dg("d0"))
	first := recv(t, started, "first build")
	if first.Trigger != (Trigger{Ref: ref("base:1"), Digest: dg("d0"), Reason: "push"}) {
		t.Errorf("first trigger = %+v", first.Trigger)
	}
	for i := 1; i <= 5; i++ {
		q.TagMoved(ref("base:1"), dg(fmt.Sprint("d", i)))
	}
	// probe is queued after app's second job: once it started, the
	// dispatcher has looked at app's job, which must wait for the first.
	q.TagMoved(ref("probe-base:1"), dg("p"))
	if j := recv(t, started, "probe"); j.Rule.Name != "probe" {
		t.Fatalf("%s started, want probe", j.Rule.Name)
	}
	if queued, running := q.Counts(); queued != 1 || running < 1 {
		t.Errorf("Counts = %d queued, %d running; want app's second job still queued", queued, running)
	}
	close(release)
	waitIdle(t, q)
	rec.check()

	runs := rec.runsOf("app")
	if len(runs) != 2 {
		t.Fatalf("%d builds, want 2", len(runs))
	}
	if runs[1].Trigger.Digest != dg("d5") {
		t.Errorf("second build's trigger digest %s, want the latest (d5)", runs[1].Trigger.Digest)
	}
	if runs[0].ID == runs[1].ID {
		t.Errorf("both builds have ID %s", runs[0].ID)
	}
	// The second job was queued once and updated four times, all before
	// it ran, and ran after the first was done.
	log := rec.logCopy()
	want := []string{
		"queued app j2", "updated app j2", "updated app j2", "updated app j2", "updated app j2",
		"run app j2", "end app j2", "done app j2",
	}
	if got := slices.DeleteFunc(slices.Clone(log), func(s string) bool { return !strings.HasSuffix(s, " j2") }); !slices.Equal(got, want) {
		t.Errorf("hooks for j2: got %q, want %q", got, want)
	}
	if slices.Index(log, "run app j2") < slices.Index(log, "done app j1") {
		t.Errorf("j2 ran before j1 was done: %q", log)
	}
}

func TestQueueUpdatedSeesLatestTrigger(t *testing.T) {
	g := mustGraph(t, rule("app", []string{"app:1"}, "base:1"))
	var mu sync.Mutex
	var seen []digest.Digest
	var ids []string
	hooks := QueueHooks{
		Queued:  func(j *Job) { mu.Lock(); seen = append(seen, j.Trigger.Digest); ids = append(ids, j.ID); mu.Unlock() },
		Updated: func(j *Job) { mu.Lock(); seen = append(seen, j.Trigger.Digest); ids = append(ids, j.ID); mu.Unlock() },
		Run:     func(context.Context, *Job) error { return nil },
	}
	q := NewQueue(g, 1, 0, nil, hooks)
	// Not started: triggers pile up on one queued job.
	q.TagMoved(ref("base:1"), dg("a"))
	j, err := q.Trigger("app", Trigger{})
	if err != nil {
		t.Fatal(err)
	}
	if j.Trigger.Reason != "manual" || j.Rule.Name != "app" {
		t.Errorf("Trigger returned %+v", j)
	}
	q.TagMoved(ref("base:1"), dg("c"))
	startQueue(t, q)
	waitIdle(t, q)
	mu.Lock()
	defer mu.Unlock()
	if want := []digest.Digest{dg("a"), "", dg("c")}; !slices.Equal(seen, want) {
		t.Errorf("hooks saw digests %q, want %q", seen, want)
	}
	if len(ids) != 3 || ids[0] != j.ID || ids[1] != j.ID || ids[2] != j.ID {
		t.Errorf("hook job IDs %q, want all %s", ids, j.ID)
	}
}

func TestQueueConcurrencyLimit(t *testing.T) {
	var rules []*Rule
	for i := range 6 {
		rules = append(rules, rule(fmt.Sprint("r", i), []string{fmt.Sprintf("r%d:1", i)}, fmt.Sprintf("base%d:1", i)))
	}
	g := mustGraph(t, rules...)
	started := make(chan string, 10)
	release := make(chan struct{}, 10)
	rec := newRecorder(t, func(ctx context.Context, j *Job) error {
		started <- j.Rule.Name
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	q := NewQueue(g, 2, 0, rec.newID, rec.hooks())
	startQueue(t, q)
	for i := range 6 {
		q.TagMoved(ref(fmt.Sprintf("base%d:1", i)), dg("x"))
	}
	// The first two start and block; then each release lets the next one
	// start, in trigger order.
	first := []string{recv(t, started, "a build to start"), recv(t, started, "a build to start")}
	slices.Sort(first)
	if want := []string{"r0", "r1"}; !slices.Equal(first, want) {
		t.Errorf("first builds %v, want %v", first, want)
	}
	for i := 2; i < 6; i++ {
		if _, running := q.Counts(); running != 2 {
			t.Errorf("%d running, want 2", running)
		}
		release <- struct{}{}
		got := recv(t, started, "a build to start")
		if want := fmt.Sprint("r", i); got != want {
			t.Errorf("build %d is %s, want %s", i, got, want)
		}
	}
	release <- struct{}{}
	release <- struct{}{}
	waitIdle(t, q)
	rec.check()
	if m := rec.max.Load(); m != 2 {
		t.Errorf("at most %d builds ran at once, want 2", m)
	}
}

func TestQueueFIFO(t *testing.T) {
	g := mustGraph(t,
		rule("blocker", []string{"blocker:1"}, "b:1"),
		rule("x", []string{"x:1"}, "x-base:1"),
		rule("y", []string{"y:1"}, "y-base:1"),
		rule("z", []string{"z:1"}, "z-base:1"),
	)
	started := make(chan string, 10)
	release := make(chan struct{})
	rec := newRecorder(t, func(ctx context.Context, j *Job) error {
		if j.Rule.Name == "blocker" {
			started <- j.Rule.Name
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	})
	q := NewQueue(g, 1, 0, rec.newID, rec.hooks())
	startQueue(t, q)
	q.TagMoved(ref("b:1"), dg("1"))
	recv(t, started, "blocker")
	q.TagMoved(ref("z-base:1"), dg("1"))
	if _, err := q.Trigger("x", Trigger{Reason: "manual"}); err != nil {
		t.Fatal(err)
	}
	q.TagMoved(ref("y-base:1"), dg("1"))
	q.TagMoved(ref("z-base:1"), dg("2")) // replaces z's trigger, keeps its place
	close(release)
	waitIdle(t, q)
	if got, want := rec.runOrder(), []string{"blocker", "z", "x", "y"}; !slices.Equal(got, want) {
		t.Errorf("run order %v, want %v", got, want)
	}
}

// pushOnBuild is a build that moves the rule's tags like the service does:
// TagMoved for each tag before the build returns.
func pushOnBuild(q **Queue) func(ctx context.Context, j *Job) error {
	return func(ctx context.Context, j *Job) error {
		for _, tag := range j.Rule.Tags {
			(*q).TagMoved(tag, dg(j.ID+tag.String()))
		}
		return nil
	}
}

func TestQueueCascade(t *testing.T) {
	tests := []struct {
		name  string
		rules []*Rule
		push  string
		// jobs the push queues at once: the others wait for an upstream push
		initial int
		want    []string            // rules built, each exactly once
		after   map[string][]string // rule -> rules that must have finished before it started
		// trigger ref the rule's build must see
		triggers map[string]string
	}{
		{
			name: "three-level chain",
			rules: []*Rule{
				rule("c", []string{"c:1"}, "b:1"),
				rule("b", []string{"b:1"}, "a:1"),
				rule("a", []string{"a:1"}, "base:1"),
			},
			push:     "base:1",
			initial:  1,
			want:     []string{"a", "b", "c"},
			after:    map[string][]string{"b": {"a"}, "c": {"b"}},
			triggers: map[string]string{"a": "base:1", "b": "a:1", "c": "b:1"},
		},
		{
			name: "multi-stage rule also on the base",
			rules: []*Rule{
				rule("flask-app", []string{"flask-app:v1.0"}, "python:3.8"),
				rule("flask-tests", []string{"flask-tests:v1.0"}, "python:3.8", "flask-app:v1.0"),
				rule("e2e", []string{"e2e:1"}, "flask-tests:v1.0", "python:3.8"),
			},
			push:     "python:3.8",
			initial:  1,
			want:     []string{"flask-app", "flask-tests", "e2e"},
			after:    map[string][]string{"flask-tests": {"flask-app"}, "e2e": {"flask-tests", "flask-app"}},
			triggers: map[string]string{"flask-app": "python:3.8", "flask-tests": "flask-app:v1.0", "e2e": "flask-tests:v1.0"},
		},
		{
			name: "diamond",
			rules: []*Rule{
				rule("bundle", []string{"bundle:1"}, "left:1", "right:1"),
				rule("left", []string{"left:1", "left:latest"}, "python:3.8"),
				rule("mid", []string{"mid:1"}, "python:3.8"),
				rule("right", []string{"right:1"}, "mid:1"),
			},
			push:    "python:3.8",
			initial: 2,
			want:    []string{"left", "mid", "right", "bundle"},
			after:   map[string][]string{"right": {"mid"}, "bundle": {"left", "mid", "right"}},
		},
		{
			name: "push in the middle",
			rules: []*Rule{
				rule("a", []string{"a:1"}, "base:1"),
				rule("b", []string{"b:1"}, "a:1", "base:1"),
				rule("c", []string{"c:1"}, "b:1", "a:1"),
			},
			push:     "a:1",
			initial:  1,
			want:     []string{"b", "c"},
			after:    map[string][]string{"c": {"b"}},
			triggers: map[string]string{"b": "a:1", "c": "b:1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustGraph(t, tt.rules...)
			var q *Queue
			rec := newRecorder(t, pushOnBuild(&q))
			q = NewQueue(g, 4, 0, rec.newID, rec.hooks())
			q.TagMoved(ref(tt.push), dg("new"))
			if queued, _ := q.Counts(); queued != tt.initial {
				t.Errorf("the push queued %d jobs, want %d", queued, tt.initial)
			}
			startQueue(t, q)
			waitIdle(t, q)
			rec.check()

			counts := map[string]int{}
			for _, name := range rec.runOrder() {
				counts[name]++
			}
			for _, name := range tt.want {
				if counts[name] != 1 {
					t.Errorf("%s built %d times, want once (order %v)", name, counts[name], rec.runOrder())
				}
			}
			if len(rec.runOrder()) != len(tt.want) {
				t.Errorf("builds %v, want each of %v once", rec.runOrder(), tt.want)
			}
			log := rec.logCopy()
			pos := func(prefix string) int {
				return slices.IndexFunc(log, func(s string) bool { return strings.HasPrefix(s, prefix) })
			}
			for r, befores := range tt.after {
				for _, b := range befores {
					if pos("done "+b+" ") < 0 || pos("run "+r+" ") < pos("done "+b+" ") {
						t.Errorf("%s started before %s finished: %q", r, b, log)
					}
				}
			}
			for r, trig := range tt.triggers {
				runs := rec.runsOf(r)
				if len(runs) == 0 {
					continue
				}
				if got := runs[0].Trigger; got.Ref != ref(trig) || got.Reason != "push" {
					t.Errorf("%s's trigger %+v, want a push of %s", r, got, trig)
				}
			}
		})
	}
}

func TestQueueWindow(t *testing.T) {
	g := mustGraph(t,
		rule("app", []string{"app:1"}, "base:1"),
		rule("other", []string{"other:1"}, "base2:1"),
	)
	const window = 100 * time.Millisecond
	var mu sync.Mutex
	startedAt := map[string]time.Time{}
	rec := newRecorder(t, func(ctx context.Context, j *Job) error {
		mu.Lock()
		startedAt[j.Rule.Name] = time.Now()
		mu.Unlock()
		return nil
	})
	queued := make(chan struct{}, 100)
	hooks := rec.hooks()
	inner := hooks.Queued
	hooks.Queued = func(j *Job) { inner(j); queued <- struct{}{} }
	q := NewQueue(g, 4, window, rec.newID, hooks)
	startQueue(t, q)

	// Bursts coalesce: both jobs are queued (their hooks ran) before the
	// last triggers, which each restart the window.
	for i := range 5 {
		q.TagMoved(ref("base:1"), dg(fmt.Sprint(i)))
		q.TagMoved(ref("base2:1"), dg(fmt.Sprint(i)))
		if i == 0 {
			recv(t, queued, "app queued")
			recv(t, queued, "other queued")
		}
	}
	// Not an assertion: spaces the last trigger from the first so that a
	// window counted from the first trigger would show.
	time.Sleep(window / 2)
	last := time.Now()
	q.TagMoved(ref("base:1"), dg("last"))
	waitIdle(t, q)
	rec.check()
	for _, r := range []string{"app", "other"} {
		runs := rec.runsOf(r)
		if len(runs) != 1 {
			t.Fatalf("%s built %d times, want once", r, len(runs))
		}
	}
	if d := rec.runsOf("app")[0].Trigger.Digest; d != dg("last") {
		t.Errorf("app built for %s, want the last trigger", d)
	}
	mu.Lock()
	defer mu.Unlock()
	// A lower bound only: the build cannot start before the window after
	// its last trigger has passed.
	if d := startedAt["app"].Sub(last); d < window {
		t.Errorf("app started %s after its last trigger, want at least %s", d, window)
	}
}

func TestQueueWindowHoldsAndShutdownCancels(t *testing.T) {
	g := mustGraph(t, rule("app", []string{"app:1"}, "base:1"))
	rec := newRecorder(t, nil)
	q := NewQueue(g, 1, time.Hour, rec.newID, rec.hooks())
	ctx, cancel := context.WithCancel(context.Background())
	q.Start(ctx)
	q.TagMoved(ref("base:1"), dg("1"))
	idle := q.Idle()
	select {
	case <-idle:
		t.Fatal("idle with a job queued")
	default:
	}
	cancel()
	q.Wait()
	<-idle
	if n := len(rec.runsOf("app")); n != 0 {
		t.Errorf("%d builds ran inside the window", n)
	}
	rec.mu.Lock()
	err, ok := rec.done["j1"]
	rec.mu.Unlock()
	if !ok || !errors.Is(err, context.Canceled) {
		t.Errorf("queued job's Done: called %v, err %v; want context.Canceled", ok, err)
	}
	if got, want := rec.logCopy(), []string{"queued app j1", "done app j1"}; !slices.Equal(got, want) {
		t.Errorf("hooks %q, want %q", got, want)
	}
}

func TestQueueTriggerUnknownRule(t *testing.T) {
	g := mustGraph(t, rule("app", []string{"app:1"}, "base:1"))
	q := NewQueue(g, 1, 0, nil, QueueHooks{})
	if j, err := q.Trigger("nope", Trigger{Reason: "manual"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Trigger(nope) = %v, %v; want an error naming it", j, err)
	}
	if queued, _ := q.Counts(); queued != 0 {
		t.Errorf("%d jobs queued", queued)
	}
}

func TestQueueShutdownWaits(t *testing.T) {
	g := mustGraph(t,
		rule("slow", []string{"slow:1"}, "base:1"),
		rule("next", []string{"next:1"}, "base2:1"),
	)
	started := make(chan struct{})
	finish := make(chan struct{})
	var returned atomic.Bool
	rec := newRecorder(t, func(ctx context.Context, j *Job) error {
		close(started)
		<-ctx.Done() // the build sees the cancellation
		<-finish
		returned.Store(true)
		return ctx.Err()
	})
	q := NewQueue(g, 1, 0, rec.newID, rec.hooks())
	ctx, cancel := context.WithCancel(context.Background())
	q.Start(ctx)
	q.TagMoved(ref("base:1"), dg("1"))
	<-started
	q.TagMoved(ref("base2:1"), dg("1")) // queued behind: never runs
	cancel()
	close(finish)
	q.Wait()
	if !returned.Load() {
		t.Fatal("Wait returned before the running build")
	}
	rec.mu.Lock()
	slowErr, slowDone := rec.done["j1"]
	nextErr, nextDone := rec.done["j2"]
	rec.mu.Unlock()
	if !slowDone || !errors.Is(slowErr, context.Canceled) {
		t.Errorf("running job's Done: %v %v", slowDone, slowErr)
	}
	if !nextDone || !errors.Is(nextErr, context.Canceled) {
		t.Errorf("queued job's Done: %v %v", nextDone, nextErr)
	}
	if n := len(rec.runsOf("next")); n != 0 {
		t.Errorf("next ran %d times after shutdown", n)
	}
	// Stopped: no new jobs.
	q.TagMoved(ref("base:1"), dg("2"))
	if _, err := q.Trigger("slow", Trigger{}); !errors.Is(err, ErrQueueStopped) {
		t.Errorf("Trigger after shutdown: %v, want ErrQueueStopped", err)
	}
	if queued, running := q.Counts(); queued != 0 || running != 0 {
		t.Errorf("after shutdown %d queued, %d running", queued, running)
	}
	waitIdle(t, q)
}

func TestQueueTagMovedDoesNotWaitForHooks(t *testing.T) {
	g := mustGraph(t, rule("app", []string{"app:1"}, "base:1"))
	block := make(chan struct{})
	var unblock sync.Once
	inHook := make(chan struct{}, 1)
	hooks := QueueHooks{
		Queued: func(*Job) {
			inHook <- struct{}{}
			<-block
		},
		Run: func(context.Context, *Job) error { return nil },
	}
	q := NewQueue(g, 1, 0, nil, hooks)
	startQueue(t, q)
	t.Cleanup(func() { unblock.Do(func() { close(block) }) }) // runs before startQueue's
	returned := make(chan struct{})
	go func() {
		q.TagMoved(ref("base:1"), dg("1"))
		<-inHook
		q.TagMoved(ref("base:1"), dg("2"))
		q.TagMoved(ref("base:1"), dg("3"))
		close(returned)
	}()
	recv(t, returned, "TagMoved to return while a hook blocks")
	if queued, running := q.Counts(); queued != 1 || running != 0 {
		t.Errorf("%d queued, %d running while the Queued hook blocks; want 1, 0", queued, running)
	}
	unblock.Do(func() { close(block) })
	waitIdle(t, q)
}

func TestQueueRunPanicIsAnError(t *testing.T) {
	g := mustGraph(t, rule("app", []string{"app:1"}, "base:1"))
	var calls atomic.Int32
	rec := newRecorder(t, func(context.Context, *Job) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return nil
	})
	q := NewQueue(g, 1, 0, rec.newID, rec.hooks())
	startQueue(t, q)
	q.TagMoved(ref("base:1"), dg("1"))
	waitIdle(t, q)
	q.TagMoved(ref("base:1"), dg("2"))
	waitIdle(t, q)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if err := rec.done["j1"]; err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("panicking build's error: %v", err)
	}
	if err, ok := rec.done["j2"]; !ok || err != nil {
		t.Errorf("next build: done %v, err %v", ok, err)
	}
}
