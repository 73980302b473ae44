package buildhook

import (
	"context"
	"time"
)

// Retention says which records of finished builds, and their logs, are
// kept: per rule, the Keep newest, and any younger than MaxAge. A zero
// field keeps nothing by itself; both zero keep everything. The newest
// successful build of each rule is always kept: it is what the rule's
// tags are, and what the next build's inputs are compared with.
type Retention struct {
	Keep   int
	MaxAge time.Duration
}

// Prune deletes the records and logs that keep no longer holds, as of
// now, and returns how many it deleted.
func (rs *Records) Prune(ctx context.Context, keep Retention, now time.Time) (int, error) {
	return rs.prune(ctx, keep, Query{}, now)
}

// PruneRule is Prune for the records of one rule (a name, never empty):
// what Keep holds of a rule changes only when one of its builds ends, and
// a cluster selects them in one indexed query.
func (rs *Records) PruneRule(ctx context.Context, keep Retention, rule string, now time.Time) (int, error) {
	return rs.prune(ctx, keep, Query{Rule: rule}, now)
}

// prune is Prune for the records q selects.
func (rs *Records) prune(ctx context.Context, keep Retention, q Query, now time.Time) (int, error) {
	if keep.Keep <= 0 && keep.MaxAge <= 0 {
		return 0, nil
	}
	recs, _, err := rs.Find(ctx, q)
	if err != nil {
		return 0, err
	}
	seen := map[string]int{}       // finished builds met so far, by rule
	succeeded := map[string]bool{} // rules whose newest success was met
	deleted := 0
	for _, r := range recs { // newest first
		if !r.Done() {
			continue
		}
		seen[r.Rule]++
		newestSuccess := r.Status == StatusSucceeded && !succeeded[r.Rule]
		if r.Status == StatusSucceeded {
			succeeded[r.Rule] = true
		}
		if newestSuccess || keep.Keep > 0 && seen[r.Rule] <= keep.Keep || keep.MaxAge > 0 && now.Sub(recordTime(r)) < keep.MaxAge {
			continue
		}
		if err := rs.store.DeleteBuild(ctx, r.ID); err != nil {
			return deleted, err
		}
		rs.mu.Lock()
		delete(rs.done, r.ID)
		rs.mu.Unlock()
		deleted++
	}
	return deleted, nil
}

// recordTime is when r's build ended, or was queued if it never did.
func recordTime(r *Record) time.Time {
	if r.Finished != nil {
		return *r.Finished
	}
	return r.Queued
}
