package buildhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"kiln/buildhook/build"
)

// sharedInstance is one kiln's shared queue in a test cluster.
type sharedInstance struct {
	q      *SharedQueue
	cancel context.CancelFunc
}

// startShared starts a shared queue named name on pool, stopped at the end
// of the test. run is the build (nil: succeed at once); tweak may change
// the options.
func startShared(t *testing.T, pool *pgxpool.Pool, g *Graph, name string, rec *recorder, tweak func(*SharedQueueOptions)) *sharedInstance {
	t.Helper()
	opts := SharedQueueOptions{
		Pool: pool, Instance: name, Concurrency: 2, Renew: 50 * time.Millisecond, Lease: time.Second, NewID: rec.newID,
		NewRecord: func(job *build.Job) *Record {
			return &Record{ID: job.ID, Rule: job.Rule.Name, Reason: job.Trigger.Reason, Status: StatusQueued, Queued: time.Now().UTC()}
		},
	}
	if tweak != nil {
		tweak(&opts)
	}
	q := NewSharedQueue(g, opts, rec.hooks())
	// Builds find their instance in their context (see instanceOf).
	ctx, cancel := context.WithCancel(withInstance(context.Background(), q))
	q.Start(ctx)
	t.Cleanup(func() { cancel(); q.Wait() })
	return &sharedInstance{q: q, cancel: cancel}
}

// waitSharedIdle waits until every instance's last look found the cluster
// idle.
func waitSharedIdle(t *testing.T, instances ...*sharedInstance) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, in := range instances {
		in.q.signal() // a look after the last change, wherever it was made
		if err := in.q.WaitIdle(ctx); err != nil {
			t.Fatalf("%s not idle: %v", in.q.opts.Instance, err)
		}
	}
}

// The burst: 50 base pushes spread over three instances while the
// first build runs. Each job runs exactly once on one instance, each rule
// builds at most twice, the cascade builds each level once, and app's last
// build sees the last push.
func TestSharedQueueBurstAcrossInstances(t *testing.T) {
	t.Parallel()
	pool := newDatabase(t)
	g := mustGraph(t,
		rule("app", []string{"app:1"}, "base:1"),
		rule("tests", []string{"tests:1"}, "app:1"),
	)
	release := make(chan struct{})
	started := make(chan build.Job, 10)
	var instances []*sharedInstance
	var mu sync.Mutex
	ran := map[string]string{} // job id -> instance
	rec := newRecorder(t, nil)
	rec.fn = func(ctx context.Context, j *build.Job) error {
		mu.Lock()
		ran[j.ID] = instanceName(ctx)
		mu.Unlock()
		started <- *j
		if j.Rule.Name == "app" && j.Trigger.Digest == dg("push 0") {
			<-release
		}
		for _, tag := range j.Rule.Tags { // the build's push, on the instance that built it
			instanceOf(ctx).TagMoved(tag, dg(j.ID))
		}
		return nil
	}
	for i := range 3 {
		instances = append(instances, startShared(t, pool, g, fmt.Sprintf("kiln-%d", i), rec, func(o *SharedQueueOptions) { o.Concurrency = 4 }))
	}
	instances[0].q.TagMoved(ref("base:1"), dg("push 0"))
	if j := recv(t, started, "the first build"); j.Rule.Name != "app" {
		t.Fatalf("first build is of %s, want app", j.Rule.Name)
	}
	for i := 1; i < 50; i++ {
		instances[i%3].q.TagMoved(ref("base:1"), dg(fmt.Sprint("push ", i)))
	}
	close(release)
	waitSharedIdle(t, instances...)
	rec.check()

	apps := rec.runsOf("app")
	if len(apps) != 2 {
		t.Fatalf("app built %d times for one burst, want 2 (the first push, then the last)", len(apps))
	}
	if last := apps[1].Trigger.Digest; last != dg("push 49") {
		t.Errorf("app's second build was triggered by %s, want the last push", last)
	}
	if tests := rec.runsOf("tests"); len(tests) != 1 {
		t.Errorf("tests built %d times, want once (held until app's last build)", len(tests))
	}
	mu.Lock()
	t.Logf("builds ran on %v", ran)
	mu.Unlock()
	var done int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM builds WHERE state = 'done'").Scan(&done); err != nil {
		t.Fatal(err)
	}
	if done != 3 {
		t.Errorf("%d builds done in the table, want 3", done)
	}
}

type instanceKey struct{}

func withInstance(ctx context.Context, q *SharedQueue) context.Context {
	return context.WithValue(ctx, instanceKey{}, q)
}

func instanceOf(ctx context.Context) *SharedQueue { return ctx.Value(instanceKey{}).(*SharedQueue) }

// A killed instance stops renewing its claim: another takes the build
// over once the claim runs out, ends the old record, runs it again as a
// resumed build, and the dead one's late writes change nothing.
func TestSharedQueueTakesOverAfterClaimRunsOut(t *testing.T) {
	t.Parallel()
	pool := newDatabase(t)
	g := mustGraph(t, rule("app", []string{"app:1"}, "base:1"))
	entered := make(chan build.Job, 4)
	release := make(chan struct{})
	rec := newRecorder(t, func(ctx context.Context, j *build.Job) error {
		entered <- *j
		if j.Trigger.Reason == "push" {
			select { // the "dead" instance's build never ends on its own
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	})
	// dead claims the job and never renews (its Renew is an hour away).
	dead := startShared(t, pool, g, "dead", rec, func(o *SharedQueueOptions) { o.Renew, o.Lease = time.Hour, 300*time.Millisecond })
	dead.q.TagMoved(ref("base:1"), dg("b1"))
	first := recv(t, entered, "the first build")

	alive := startShared(t, pool, g, "alive", rec, nil)
	resumed := recv(t, entered, "the build taken over")
	if resumed.Trigger.Reason != "resume" || resumed.Trigger.Restarts != 1 || resumed.Trigger.Digest != dg("b1") {
		t.Errorf("taken over as %+v, want a resume of b1 with one restart", resumed.Trigger)
	}
	if resumed.ID == first.ID {
		t.Errorf("the build taken over kept its id %s", first.ID)
	}
	records := sharedRecords{pool: pool}
	old := readRecord(t, records, first.ID)
	if old.Status != StatusFailed || !strings.Contains(old.Error, "instance dead stopped renewing its claim") ||
		!strings.Contains(old.Error, "run again as build "+resumed.ID) {
		t.Errorf("old record: %s, %q", old.Status, old.Error)
	}
	// The dead instance comes back to life: it may neither move the
	// rule's tags nor rewrite history.
	if err := dead.q.StillClaimed(context.Background(), first.ID); !errors.Is(err, errBuildEnded) {
		t.Errorf("the old instance asks whether it still runs the build: %v, want errBuildEnded", err)
	}
	err := records.PutBuildRecord(context.Background(), first.ID, []byte(`{"id":"`+first.ID+`","status":"succeeded"}`))
	if !errors.Is(err, errBuildEnded) {
		t.Errorf("a late record write from the old instance: %v, want errBuildEnded", err)
	}
	close(release)
	waitSharedIdle(t, dead, alive)
	// No rec.check(): the "dead" instance's build ran beside its resume,
	// as a build cut off from the database (not killed) would.
	if runs := rec.runsOf("app"); len(runs) != 2 {
		t.Errorf("app ran %d times, want 2 (the lost one and its resume)", len(runs))
	}
	if got := readRecord(t, records, first.ID); got.Status != StatusFailed {
		t.Errorf("after the old instance finished, its record is %s, want still failed", got.Status)
	}
}

func readRecord(t *testing.T, rs sharedRecords, id string) *Record {
	t.Helper()
	b, err := rs.BuildRecord(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// A shutdown hands a running build back to the queue: another instance
// runs it at once, under the same id.
func TestSharedQueueShutdownHandsBuildBack(t *testing.T) {
	t.Parallel()
	pool := newDatabase(t)
	g := mustGraph(t, rule("app", []string{"app:1"}, "base:1"))
	entered := make(chan string, 4)
	rec := newRecorder(t, nil)
	rec.fn = func(ctx context.Context, j *build.Job) error {
		entered <- instanceName(ctx)
		<-ctx.Done() // runs until its instance stops
		return ctx.Err()
	}
	a := startShared(t, pool, g, "a", rec, nil)
	a.q.TagMoved(ref("base:1"), dg("b1"))
	if on := recv(t, entered, "the build on a"); on != "a" {
		t.Fatalf("build started on %s", on)
	}
	b := startShared(t, pool, g, "b", rec, nil)
	a.cancel()
	a.q.Wait()
	if on := recv(t, entered, "the build handed to b"); on != "b" {
		t.Fatalf("handed-back build started on %s, want b", on)
	}
	runs := rec.runsOf("app")
	if len(runs) != 2 || runs[0].ID != runs[1].ID {
		t.Errorf("runs %v, want the same job twice", runs)
	}
	b.cancel()
}

func instanceName(ctx context.Context) string { return instanceOf(ctx).opts.Instance }

// The finding: a push answered while the database refused the queue's
// write built nothing, ever. The move now waits and is queued, in order,
// once the database takes writes again.
func TestSharedQueueKeepsMovesTheDatabaseRefused(t *testing.T) {
	t.Parallel()
	pool := newDatabase(t)
	g := mustGraph(t, rule("app", []string{"app:1"}, "base:1"))
	started := make(chan build.Job, 4)
	rec := newRecorder(t, func(ctx context.Context, j *build.Job) error { started <- *j; return nil })
	in := startShared(t, pool, g, "a", rec, nil)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, "ALTER TABLE builds RENAME TO builds_away"); err != nil {
		t.Fatal(err)
	}
	in.q.TagMoved(ref("base:1"), dg("while away"))
	in.q.TagMoved(ref("base:1"), dg("still away"))
	select {
	case <-in.q.Idle():
		t.Fatal("the queue says idle with moves it could not write")
	default:
	}
	if _, err := pool.Exec(ctx, "ALTER TABLE builds_away RENAME TO builds"); err != nil {
		t.Fatal(err)
	}
	j := recv(t, started, "the build of the move the database refused")
	waitSharedIdle(t, in)
	runs := rec.runsOf("app")
	// Both moves reach the queue in order: one build with the later
	// trigger, or the first build and then the second.
	if last := runs[len(runs)-1].Trigger.Digest; last != dg("still away") || len(runs) > 2 {
		t.Errorf("builds %v (first %s); want the last one on the last move", runs, j.Trigger.Digest)
	}
}
