package buildhook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"kiln/buildhook/build"
)

// pushOnBuild is a build that moves the rule's tags like the service does:
// TagMoved for each tag before the build returns.
func pushOnBuild(q **Queue) func(ctx context.Context, j *build.Job) error {
	return func(ctx context.Context, j *build.Job) error {
		for _, tag := range j.Rule.Tags {
			(*q).TagMoved(tag, dg(j.ID+tag.String()))
		}
		return nil
	}
}

func TestQueueCascade(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		rules []*build.Rule
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
			rules: []*build.Rule{
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
			rules: []*build.Rule{
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
			rules: []*build.Rule{
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
			rules: []*build.Rule{
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

// TestQueueWindow runs in a synctest bubble: the window is fake time, so
// the bounds below are exact on any machine.
func TestQueueWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustGraph(t,
			rule("app", []string{"app:1"}, "base:1"),
			rule("other", []string{"other:1"}, "base2:1"),
		)
		const window = 100 * time.Millisecond
		var mu sync.Mutex
		startedAt := map[string]time.Time{}
		rec := newRecorder(t, func(ctx context.Context, j *build.Job) error {
			mu.Lock()
			startedAt[j.Rule.Name] = time.Now()
			mu.Unlock()
			return nil
		})
		queued := make(chan struct{}, 100)
		hooks := rec.hooks()
		inner := hooks.Queued
		hooks.Queued = func(j *build.Job) { inner(j); queued <- struct{}{} }
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
		// Half a window of fake time between the first triggers and the
		// last, so that a window counted from the first would show.
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
		// Time only moves when every goroutine waits: the build starts
		// exactly one window after its last trigger.
		if d := startedAt["app"].Sub(last); d != window {
			t.Errorf("app started %s after its last trigger, want %s", d, window)
		}
	})
}

func TestQueueWindowHoldsAndShutdownCancels(t *testing.T) {
	t.Parallel()
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
