package buildhook

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
)

// dg is a test digest.
func dg(s string) digest.Digest { return digest.FromString(s) }

// recorder records what the queue's hooks see.
type recorder struct {
	t  *testing.T
	fn func(ctx context.Context, job *build.Job) error // the build; nil: succeed at once

	mu         sync.Mutex
	log        []string    // "queued|updated|run|end|done <rule> <id>"
	runs       []build.Job // in start order
	done       map[string]error
	active     map[string]int // rule -> running builds
	violations []string

	cur, max atomic.Int32
	ids      atomic.Int64
}

func newRecorder(t *testing.T, fn func(ctx context.Context, job *build.Job) error) *recorder {
	return &recorder{t: t, fn: fn, done: map[string]error{}, active: map[string]int{}}
}

func (r *recorder) add(format string, a ...any) {
	r.mu.Lock()
	r.log = append(r.log, fmt.Sprintf(format, a...))
	r.mu.Unlock()
}

func (r *recorder) hooks() QueueHooks {
	return QueueHooks{
		Queued:  func(j *build.Job) { r.add("queued %s %s", j.Rule.Name, j.ID) },
		Updated: func(j *build.Job) { r.add("updated %s %s", j.Rule.Name, j.ID) },
		Run: func(ctx context.Context, j *build.Job) error {
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
		Done: func(j *build.Job, err error) {
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
func (r *recorder) runsOf(rule string) []build.Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []build.Job
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

func mustGraph(t *testing.T, rules ...*build.Rule) *Graph {
	t.Helper()
	g, err := NewGraph(rules)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
