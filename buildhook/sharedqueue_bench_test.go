package buildhook

import (
	"context"
	"fmt"
	"testing"
	"time"

	"kiln/buildhook/build"
)

// BenchmarkBuildStart measures what the cluster's queue adds to the time
// from a base's tag move to its build starting: the same trigger, one
// process's Queue against a SharedQueue on PostgreSQL (one instance, and
// the trigger taken by another instance than the one that runs it).
//
//	go test -run '^$' -bench BuildStart -benchtime 200x ./buildhook/
func BenchmarkBuildStart(b *testing.B) {
	g, err := NewGraph([]*build.Rule{rule("app", []string{"app:1"}, "base:1")})
	if err != nil {
		b.Fatal(err)
	}
	started := make(chan struct{}, 1)
	hooks := QueueHooks{Run: func(context.Context, *build.Job) error { started <- struct{}{}; return nil }}
	measure := func(b *testing.B, trigger func(int), idle func()) {
		for i := 0; b.Loop(); i++ {
			trigger(i)
			<-started
			b.StopTimer()
			idle()
			b.StartTimer()
		}
	}
	b.Run("process", func(b *testing.B) {
		q := NewQueue(g, 1, 0, nil, hooks)
		ctx, cancel := context.WithCancel(context.Background())
		defer func() { cancel(); q.Wait() }()
		q.Start(ctx)
		measure(b, func(i int) { q.TagMoved(ref("base:1"), dg(fmt.Sprint(i))) }, func() { q.WaitIdle(ctx) })
	})
	for _, tc := range []struct {
		name      string
		instances int
	}{{"cluster-same-instance", 1}, {"cluster-other-instance", 2}} {
		b.Run(tc.name, func(b *testing.B) {
			pool := newDatabase(b)
			var qs []*SharedQueue
			ctx, cancel := context.WithCancel(context.Background())
			defer func() {
				cancel()
				for _, q := range qs {
					q.Wait()
				}
			}()
			for n := range tc.instances {
				q := NewSharedQueue(g, SharedQueueOptions{Pool: pool, Instance: fmt.Sprint("i", n), Renew: time.Minute,
					NewRecord: func(job *build.Job) *Record { return &Record{ID: job.ID, Rule: job.Rule.Name, Status: StatusQueued} }}, hooks)
				if n > 0 {
					q.opts.Concurrency = 0 // takes triggers, runs none: instance 0 must hear of them
				}
				q.Start(ctx)
				qs = append(qs, q)
			}
			taker := qs[len(qs)-1]
			measure(b, func(i int) { taker.TagMoved(ref("base:1"), dg(fmt.Sprint(i))) }, func() { qs[0].WaitIdle(ctx) })
		})
	}
}
