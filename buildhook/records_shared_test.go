package buildhook

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"kiln/storage"
)

// Records in a cluster's database answer every query as the records in a
// store do.
func TestSharedRecordsFindLikeTheStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := newDatabase(t)
	inStore := NewRecords(storage.NewInMemory(storage.Options{}))
	inDB := newRecords(sharedRecords{pool: pool})
	statuses := []string{StatusSucceeded, StatusFailed, StatusQueued, StatusRunning, StatusUnchanged}
	for i := range 12 {
		r := &Record{ID: fmt.Sprintf("20261203T120000-%06d-0001", i), Rule: []string{"app", "tests"}[i%2], Status: statuses[i%5], Queued: time.Now().UTC()}
		if err := inStore.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
		state := map[string]string{StatusQueued: "queued", StatusRunning: "running"}[r.Status]
		if state == "" {
			state = "done"
		}
		if _, err := pool.Exec(ctx, `INSERT INTO builds (id, rule, state, ready_at, trigger, record) VALUES ($1, $2, $3, now(), '{}', $4)`,
			r.ID, r.Rule, state, r); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(recs []*Record) []string {
		var out []string
		for _, r := range recs {
			out = append(out, r.ID)
		}
		return out
	}
	for _, q := range []Query{
		{},
		{Rule: "app"},
		{Status: StatusFailed},
		{Rule: "tests", Status: StatusQueued},
		{Limit: 5},
		{Limit: 5, Before: "20261203T120000-000007-0001"},
		{Rule: "app", Limit: 2, Before: "20261203T120000-000004-0001"},
		{Limit: 12},
		{Rule: "nothing"},
	} {
		want, wantMore, err := inStore.Find(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		got, more, err := inDB.Find(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), ids(want)) || more != wantMore {
			t.Errorf("%+v: database %v more=%v, store %v more=%v", q, ids(got), more, ids(want), wantMore)
		}
	}
}
