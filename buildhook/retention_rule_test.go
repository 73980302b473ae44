package buildhook

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"kiln/config"
	"kiln/storage"
)

// findCounter is a record store that selects records itself, as a
// cluster's builds table does, and counts the records its selections
// returned, by rule: what each query read.
type findCounter struct {
	*storage.Store
	all *Records // the same store, listed
	mu  sync.Mutex
	got map[string]int
}

func newFindCounter() *findCounter {
	st := storage.NewInMemory(storage.Options{})
	return &findCounter{Store: st, all: NewRecords(st), got: map[string]int{}}
}

func (f *findCounter) FindRecords(ctx context.Context, q Query) ([]*Record, bool, error) {
	recs, more, err := f.all.Find(ctx, q)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range recs {
		f.got[r.Rule]++
	}
	return recs, more, err
}

// reads returns the records read by rule since the last call.
func (f *findCounter) reads() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	got := maps.Clone(f.got)
	clear(f.got)
	return got
}

// count returns how many records of rule are stored.
func (f *findCounter) count(t *testing.T, rule string) int {
	t.Helper()
	recs, _, err := f.all.Find(context.Background(), Query{Rule: rule})
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

var quiet = slog.New(slog.DiscardHandler)

// pruningService is a Service with only what pruning uses: records in
// store, keep, and a clock that reads *now.
func pruningService(store recordStore, keep Retention, now *time.Time) *Service {
	s := &Service{records: newRecords(store), opts: ServiceOptions{Retention: keep}, log: quiet}
	s.pruning.now = func() time.Time { return *now }
	return s
}

// addBuilds saves n failed builds of each rule, a minute apart from at.
func addBuilds(t *testing.T, rs *Records, rules []string, n int, at time.Time) {
	t.Helper()
	for i := range n {
		for j, rule := range rules {
			recordAt(t, rs, i*len(rules)+j, rule, StatusFailed, at.Add(time.Duration(i)*time.Minute))
		}
	}
}

func ruleNames(n int) []string {
	var rules []string
	for i := range n {
		rules = append(rules, fmt.Sprintf("rule%d", i))
	}
	return rules
}

// Keep is per rule: a build's end reads and prunes the records of its
// own rule, and none of the others' until the next prune of every rule.
func TestBuildEndPrunesOnlyItsRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newFindCounter()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s := pruningService(store, Retention{Keep: 100}, &now)
	rules := ruleNames(10)
	addBuilds(t, s.records, rules, 105, now.Add(-3*time.Hour))
	s.prune(ctx) // as Start does
	if got := store.reads(); got["rule3"] != 105 || got["rule5"] != 105 {
		t.Fatalf("the prune at start read %v, want each rule's 105", got)
	}
	if n := store.count(t, "rule5"); n != 100 {
		t.Fatalf("after the prune at start rule5 keeps %d records, want 100", n)
	}

	// Each rule's next build ends; rule3's end is seen.
	addBuilds(t, s.records, rules, 1, now.Add(-time.Minute))
	now = now.Add(time.Minute)
	s.pruneAfterBuild(ctx, "rule3")
	got := store.reads()
	read := 0
	for rule, n := range got {
		read += n
		if rule != "rule3" && n > 0 {
			t.Errorf("rule3's end read %d records of %s", n, rule)
		}
	}
	t.Logf("a build's end read %d of the %d records of %d rules (keep 100)", read, 10*101, len(rules))
	if got["rule3"] != 101 {
		t.Errorf("rule3's end read %d of its records, want its 101", got["rule3"])
	}
	if n := store.count(t, "rule3"); n != 100 {
		t.Errorf("rule3 keeps %d records, want 100", n)
	}
	if n := store.count(t, "rule5"); n != 101 {
		t.Errorf("rule5 keeps %d records, want its 101 until its own build ends", n)
	}

	// An interval after the start's prune, a build's end prunes every rule.
	now = now.Add(fullPruneEvery)
	s.pruneAfterBuild(ctx, "rule3")
	if n := store.count(t, "rule5"); n != 100 {
		t.Errorf("after the full prune rule5 keeps %d records, want 100", n)
	}
}

// MaxAge expires the records of a rule that no longer builds: at start,
// and at the first build's end a full interval after the last prune of
// every rule.
func TestRetentionExpiresIdleRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newFindCounter()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s := pruningService(store, Retention{MaxAge: 24 * time.Hour}, &now)
	addBuilds(t, s.records, []string{"busy", "idle"}, 3, now.Add(-30*time.Hour))
	addBuilds(t, s.records, []string{"busy", "idle"}, 5, now.Add(-23*time.Hour-20*time.Minute))
	s.prune(ctx) // as Start does
	if n := store.count(t, "idle"); n != 5 {
		t.Fatalf("after the prune at start idle keeps %d records, want the 5 younger than a day", n)
	}

	// Idle's records grow old while busy builds; until the interval is
	// out, busy's ends leave idle alone.
	now = now.Add(fullPruneEvery / 2)
	addBuilds(t, s.records, []string{"busy"}, 1, now.Add(-time.Minute))
	store.reads()
	s.pruneAfterBuild(ctx, "busy")
	if got := store.reads(); got["idle"] != 0 {
		t.Errorf("busy's end half an interval after the last full prune read %d of idle's records", got["idle"])
	}
	if n := store.count(t, "idle"); n != 5 {
		t.Errorf("idle keeps %d records before the full prune, want 5", n)
	}

	// A full interval after the start's prune: busy's end prunes idle too.
	now = now.Add(fullPruneEvery / 2)
	s.pruneAfterBuild(ctx, "busy")
	if n := store.count(t, "idle"); n != 0 {
		t.Errorf("idle keeps %d records over a day old, want none", n)
	}
	if n := store.count(t, "busy"); n != 1 {
		t.Errorf("busy keeps %d records, want its 1 younger than a day", n)
	}

	// The next full prune is again an interval later.
	addBuilds(t, s.records, []string{"idle"}, 7, now.Add(-48*time.Hour))
	now = now.Add(fullPruneEvery - time.Second)
	s.pruneAfterBuild(ctx, "busy")
	if n := store.count(t, "idle"); n != 7 {
		t.Errorf("idle keeps %d records before the interval is out, want 7", n)
	}
	now = now.Add(time.Second)
	s.pruneAfterBuild(ctx, "busy")
	if n := store.count(t, "idle"); n != 0 {
		t.Errorf("idle keeps %d records after the interval, want none", n)
	}
}

// Start prunes every rule's records, those of rules no longer configured
// too.
func TestStartPrunesEveryRule(t *testing.T) {
	t.Parallel()
	store := storage.NewInMemory(storage.Options{})
	addBuilds(t, NewRecords(store), []string{"gone", "other"}, 4, time.Now().Add(-time.Hour))
	svc, _ := startService(t, ServiceOptions{Store: store, Retention: Retention{Keep: 2}, Logger: quiet})
	for _, rule := range []string{"gone", "other"} {
		recs, _, err := svc.Records().Find(context.Background(), Query{Rule: rule})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 {
			t.Errorf("after start %s keeps %d records, want 2", rule, len(recs))
		}
	}
}

// A build's end, as the service sees it, prunes its rule's records and
// reads no other rule's.
func TestServiceBuildEndPrunesItsRule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "app/Dockerfile", "FROM kiln.test/base:1\n")
	rules, err := LoadRules([]config.Build{{Name: "app", Context: "app", Dockerfile: "Dockerfile", Tags: []string{"app:v1"}, Builder: "native"}}, dir, []string{"kiln.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := newFindCounter()
	svc, err := NewService(ServiceOptions{Store: store.Store, Rules: rules, Registry: "kiln.test", Hosts: []string{"kiln.test"}, Retention: Retention{Keep: 2}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	svc.records = newRecords(store)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); svc.Wait() })
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	addBuilds(t, svc.records, []string{"app", "other"}, 3, time.Now().Add(-time.Hour))
	store.reads()

	// base:1 is not in the registry: the build fails at once.
	if _, err := svc.Trigger("app", true); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := svc.WaitIdle(wctx); err != nil {
		t.Fatal(err)
	}
	if got := store.reads(); got["other"] != 0 || got["app"] == 0 {
		t.Errorf("app's end read %v records by rule, want app's and none of other's", got)
	}
	if n := store.count(t, "app"); n != 2 {
		t.Errorf("app keeps %d records, want 2", n)
	}
	if n := store.count(t, "other"); n != 3 {
		t.Errorf("other keeps %d records, want its 3 until its own build ends", n)
	}
}
