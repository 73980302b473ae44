package buildhook

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// BenchmarkClusterPrune is what a build's end pays for retention in a
// cluster holding 1000 records of 10 rules (Keep 100, so none goes): the
// prune of every rule it ran before, and the prune of its own rule it
// runs now.
func BenchmarkClusterPrune(b *testing.B) {
	ctx := context.Background()
	pool := newDatabase(b)
	rules := ruleNames(10)
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for i := range 1000 {
		at := start.Add(time.Duration(i) * time.Minute)
		ended := at.Add(time.Minute)
		r := &Record{ID: fmt.Sprintf("%s-%06d-%04d", at.Format("20060102T150405"), 0, i), Rule: rules[i%len(rules)],
			TriggerRef: "kiln.test/base:1", TriggerDigest: digest.FromString(fmt.Sprint(i)), Reason: "base kiln.test/base:1 moved",
			Builder: "native", Status: StatusFailed, Error: "base kiln.test/base:1 is not in the registry",
			Queued: at, Started: &at, Finished: &ended, Instance: "kiln-a"}
		if _, err := pool.Exec(ctx, `INSERT INTO builds (id, rule, state, ready_at, trigger, record) VALUES ($1, $2, 'done', now(), '{}', $3)`,
			r.ID, r.Rule, r); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, "ANALYZE builds"); err != nil {
		b.Fatal(err)
	}
	rs := newRecords(sharedRecords{pool: pool})
	keep := Retention{Keep: 100}
	for _, bc := range []struct {
		name  string
		prune func() (int, error)
	}{
		{"every-rule", func() (int, error) { return rs.Prune(ctx, keep, start) }},
		{"one-rule", func() (int, error) { return rs.PruneRule(ctx, keep, "rule3", start) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if n, err := bc.prune(); n != 0 || err != nil {
					b.Fatalf("pruned %d (%v), want none", n, err)
				}
			}
		})
	}
}
