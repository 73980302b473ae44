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

	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
)

func TestQueueCoalescesWhileRunning(t *testing.T) {
	t.Parallel()
	g := mustGraph(t,
		rule("app", []string{"app:1"}, "base:1"),
		rule("probe", []string{"probe:1"}, "probe-base:1"),
	)
	started := make(chan *build.Job, 10)
	release := make(chan struct{})
	rec := newRecorder(t, func(ctx context.Context, j *build.Job) error {
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
	if first.Trigger != (build.Trigger{Ref: ref("base:1"), Digest: dg("d0"), Reason: "push"}) {
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
	t.Parallel()
	g := mustGraph(t, rule("app", []string{"app:1"}, "base:1"))
	var mu sync.Mutex
	var seen []digest.Digest
	var ids []string
	hooks := QueueHooks{
		Queued: func(j *build.Job) {
			mu.Lock()
			seen = append(seen, j.Trigger.Digest)
			ids = append(ids, j.ID)
			mu.Unlock()
		},
		Updated: func(j *build.Job) {
			mu.Lock()
			seen = append(seen, j.Trigger.Digest)
			ids = append(ids, j.ID)
			mu.Unlock()
		},
		Run: func(context.Context, *build.Job) error { return nil },
	}
	q := NewQueue(g, 1, 0, nil, hooks)
	// Not started: triggers pile up on one queued job.
	q.TagMoved(ref("base:1"), dg("a"))
	j, err := q.Trigger("app", build.Trigger{})
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
	t.Parallel()
	var rules []*build.Rule
	for i := range 6 {
		rules = append(rules, rule(fmt.Sprint("r", i), []string{fmt.Sprintf("r%d:1", i)}, fmt.Sprintf("base%d:1", i)))
	}
	g := mustGraph(t, rules...)
	started := make(chan string, 10)
	release := make(chan struct{}, 10)
	rec := newRecorder(t, func(ctx context.Context, j *build.Job) error {
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
	t.Parallel()
	g := mustGraph(t,
		rule("blocker", []string{"blocker:1"}, "b:1"),
		rule("x", []string{"x:1"}, "x-base:1"),
		rule("y", []string{"y:1"}, "y-base:1"),
		rule("z", []string{"z:1"}, "z-base:1"),
	)
	started := make(chan string, 10)
	release := make(chan struct{})
	rec := newRecorder(t, func(ctx context.Context, j *build.Job) error {
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
	if _, err := q.Trigger("x", build.Trigger{Reason: "manual"}); err != nil {
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

func TestQueueTriggerUnknownRule(t *testing.T) {
	t.Parallel()
	g := mustGraph(t, rule("app", []string{"app:1"}, "base:1"))
	q := NewQueue(g, 1, 0, nil, QueueHooks{})
	if j, err := q.Trigger("nope", build.Trigger{Reason: "manual"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Trigger(nope) = %v, %v; want an error naming it", j, err)
	}
	if queued, _ := q.Counts(); queued != 0 {
		t.Errorf("%d jobs queued", queued)
	}
}

func TestQueueShutdownWaits(t *testing.T) {
	t.Parallel()
	g := mustGraph(t,
		rule("slow", []string{"slow:1"}, "base:1"),
		rule("next", []string{"next:1"}, "base2:1"),
	)
	started := make(chan struct{})
	finish := make(chan struct{})
	var returned atomic.Bool
	rec := newRecorder(t, func(ctx context.Context, j *build.Job) error {
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
	if _, err := q.Trigger("slow", build.Trigger{}); !errors.Is(err, ErrQueueStopped) {
		t.Errorf("Trigger after shutdown: %v, want ErrQueueStopped", err)
	}
	if queued, running := q.Counts(); queued != 0 || running != 0 {
		t.Errorf("after shutdown %d queued, %d running", queued, running)
	}
	waitIdle(t, q)
}

func TestQueueTagMovedDoesNotWaitForHooks(t *testing.T) {
	t.Parallel()
	g := mustGraph(t, rule("app", []string{"app:1"}, "base:1"))
	block := make(chan struct{})
	var unblock sync.Once
	inHook := make(chan struct{}, 1)
	hooks := QueueHooks{
		Queued: func(*build.Job) {
			inHook <- struct{}{}
			<-block
		},
		Run: func(context.Context, *build.Job) error { return nil },
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
	t.Parallel()
	g := mustGraph(t, rule("app", []string{"app:1"}, "base:1"))
	var calls atomic.Int32
	rec := newRecorder(t, func(context.Context, *build.Job) error {
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

// The Queued hooks of the jobs one tag move queues run at once: each saves
// a record durably, and the builds wait for all of them.
func TestQueueHooksOfSeveralJobsOverlap(t *testing.T) {
	t.Parallel()
	g := mustGraph(t,
		rule("app", []string{"app:1"}, "base:1"),
		rule("tests", []string{"tests:1"}, "base:1"))
	arrived := make(chan string, 2)
	allIn := make(chan struct{})
	var ran atomic.Int32
	hooks := QueueHooks{
		Queued: func(j *build.Job) {
			arrived <- j.Rule.Name
			<-allIn
		},
		Run: func(context.Context, *build.Job) error { ran.Add(1); return nil },
	}
	q := NewQueue(g, 2, 0, nil, hooks)
	startQueue(t, q)
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(allIn) }) })
	q.TagMoved(ref("base:1"), dg("1"))
	recv(t, arrived, "the first Queued hook")
	recv(t, arrived, "the second Queued hook while the first has not returned")
	if n := ran.Load(); n != 0 {
		t.Errorf("%d builds started before their Queued hooks returned", n)
	}
	release.Do(func() { close(allIn) })
	waitIdle(t, q)
	if n := ran.Load(); n != 2 {
		t.Errorf("%d builds ran, want 2", n)
	}
}
