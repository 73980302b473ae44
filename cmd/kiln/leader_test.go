package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// Without a cluster a task that is on just runs, and one that is off
// does not.
func TestLeadWithoutCluster(t *testing.T) {
	var node *clusterNode
	ran := false
	node.lead(t.Context(), taskGC, false, func(context.Context) { ran = true })
	if ran {
		t.Error("a task that is off ran")
	}
	node.lead(t.Context(), taskGC, true, func(context.Context) { ran = true })
	if !ran {
		t.Error("a task that is on did not run")
	}
	node.housekeep(t.Context()) // returns: nothing to keep
}

// lineWriter sends each write that holds want on found.
type lineWriter struct {
	want  string
	found chan string
}

func (w lineWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.want) {
		w.found <- string(p)
	}
	return len(p), nil
}

// The leader of housekeeping forgets an instance silent for longer than
// the bound, logging it, and keeps one that beats.
func TestHousekeepingForgetsSilentInstances(t *testing.T) {
	ctx := t.Context()
	cfg := testConfig(t)
	cfg.Cluster.Postgres = clusterDSN(t)
	found := make(chan string, 1)
	logger := slog.New(slog.NewTextHandler(lineWriter{want: "forgot instances", found: found}, nil))
	node, err := openCluster(ctx, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer node.close()
	if err := node.join(ctx, cfg, "127.0.0.1:5000"); err != nil {
		t.Fatal(err)
	}
	silent := time.Now().Add(-silentBound(cfg.Cluster.Heartbeat) - time.Second)
	if _, err := node.db.Pool().Exec(ctx, "INSERT INTO instances (id, addr, started, heartbeat) VALUES ('dead', 'x:1', $1, $1)", silent); err != nil {
		t.Fatal(err)
	}

	hctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		node.housekeep(hctx)
	}()
	line := <-found
	stop()
	<-done
	if !strings.Contains(line, "dead") {
		t.Errorf("log line %q does not name the instance", line)
	}
	is, err := node.db.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(is) != 1 || is[0].ID != node.member.ID() {
		t.Errorf("instances: %+v, want this one only", is)
	}
}
