package main

import (
	"context"
	"log/slog"
	"time"

	"kiln/cluster"
)

// The cluster-wide tasks: with cluster.postgres only the instance that
// leads one runs it, so N instances do not poll upstreams N times or
// collect one store N times at once.
const (
	taskUpstreamWatch = "upstream-watch"
	taskGC            = "gc"
	taskRetention     = "retention"
	taskCacheCheck    = "cache-check"
	taskHousekeeping  = "housekeeping"
)

// leaderTasks lists them, for status.
var leaderTasks = []string{taskUpstreamWatch, taskGC, taskRetention, taskCacheCheck, taskHousekeeping}

// lead runs run while this instance leads task, until ctx ends; without a
// cluster it just runs it. A task that is off (!on) is not run, nor led:
// leading costs a database connection.
func (n *clusterNode) lead(ctx context.Context, task string, on bool, run func(context.Context)) {
	if !on {
		return
	}
	if n == nil {
		run(ctx)
		return
	}
	var holder string
	if n.member != nil {
		holder = n.member.ID()
	}
	n.db.Lead(ctx, task, cluster.LeadOptions{Interval: n.heartbeat, Holder: holder, Logger: n.logger}, run)
}

// silentBound is how long an instance may go without a heartbeat before
// housekeeping forgets it: many heartbeats, so that a slow database or a
// paused process is not taken for a dead one.
func silentBound(heartbeat time.Duration) time.Duration {
	return max(10*heartbeat, time.Minute)
}

// housekeep, on the leader of housekeeping, removes the rows of instances
// silent for silentBound, checking every heartbeat until ctx ends: a
// killed instance never removes its own.
func (n *clusterNode) housekeep(ctx context.Context) {
	if n == nil {
		return
	}
	n.lead(ctx, taskHousekeeping, true, func(ctx context.Context) {
		t := time.NewTicker(n.heartbeat)
		defer t.Stop()
		for {
			bound := silentBound(n.heartbeat)
			ids, err := n.db.Forget(ctx, time.Now().Add(-bound))
			switch {
			case err != nil && ctx.Err() == nil:
				n.logger.Warn("cluster: forgetting silent instances", slog.Any("err", err))
			case len(ids) > 0:
				n.logger.Info("cluster: forgot instances silent for "+bound.String(), slog.Any("instances", ids))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
}
