package cluster

import (
	"context"
	"testing"
)

func TestRunningBuilds(t *testing.T) {
	t.Parallel()
	db := open(t, newDatabase(t))
	ctx := context.Background()
	for _, row := range []struct{ id, rule, state, instance string }{
		{"b1", "app", "running", "kiln-b"},
		{"b2", "tests", "running", "kiln-a"},
		{"b3", "app", "queued", ""},
		{"b4", "app", "done", ""},
	} {
		var instance any
		if row.instance != "" {
			instance = row.instance
		}
		if _, err := db.pool.Exec(ctx, `INSERT INTO builds (id, rule, state, ready_at, trigger, record, instance, lease)
			VALUES ($1, $2, $3, now(), '{}', '{}', $4, now())`, row.id, row.rule, row.state, instance); err != nil {
			t.Fatal(err)
		}
	}
	running, queued, err := db.RunningBuilds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if queued != 1 || len(running) != 2 || running[0].ID != "b2" || running[0].Instance != "kiln-a" || running[1].ID != "b1" || running[1].Rule != "app" {
		t.Errorf("running %+v, queued %d; want b2 on kiln-a, b1 (app) on kiln-b, one queued", running, queued)
	}
}
