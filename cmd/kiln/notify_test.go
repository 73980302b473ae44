package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"kiln/buildhook"
	"kiln/buildhook/build"
	"kiln/config"
	"kiln/metrics"
	"kiln/notify"
	"kiln/storage"
)

// A build's statuses become events; a success also says which tags moved.
func TestBuildEvents(t *testing.T) {
	store := storage.NewInMemory(storage.Options{})
	n, err := notify.New(t.Context(), store, []notify.Endpoint{{URL: "http://hook.invalid/"}}, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hear := buildEvents(n, slog.Default())
	tags := []build.ImageRef{{Repo: "app", Tag: "v1"}, {Repo: "app", Tag: "latest"}}
	for _, status := range []string{buildhook.StatusQueued, buildhook.StatusRunning, buildhook.StatusSucceeded, buildhook.StatusFailed, buildhook.StatusUnchanged} {
		hear(buildhook.StatusChange{Record: buildhook.Record{ID: "b1", Rule: "app", Status: status, Result: "sha256:aa"}, Tags: tags})
	}
	stored, err := store.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"build.queued", "build.started", "build.succeeded", "tag.moved app:v1", "tag.moved app:latest", "build.failed", "build.unchanged"}
	if len(stored) != len(want) {
		t.Fatalf("%d events, want %d", len(stored), len(want))
	}
	for i, se := range stored {
		var e notify.Event
		json.Unmarshal(se.Content, &e)
		got := e.Type
		if e.Tag != "" {
			got += " " + e.Repo + ":" + e.Tag
		}
		if got != want[i] || e.Build != "b1" || e.Rule != "app" {
			t.Errorf("event %d: %s (build %q rule %q), want %s", i, got, e.Build, e.Rule, want[i])
		}
	}
	if buildEvents(nil, slog.Default()) != nil {
		t.Error("without endpoints builds are not listened to")
	}
}

// In a cluster the webhooks' outbox is the database: two instances on one
// store each publish, and the endpoint gets each event once, in order,
// while the store's outbox stays empty.
func TestClusterWebhooksShareOneOutbox(t *testing.T) {
	got := make(chan string, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ce struct{ Data notify.Event }
		json.NewDecoder(r.Body).Decode(&ce)
		got <- ce.Data.Tag
	}))
	defer hook.Close()
	cfg := testConfig(t)
	cfg.Cluster.Postgres = clusterDSN(t)
	cfg.Cluster.Heartbeat = 100 * time.Millisecond
	cfg.Notifications.Endpoints = []config.Endpoint{{Name: "hook", URL: hook.URL, Format: config.FormatCloudEvents,
		Timeout: 5 * time.Second, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	store := storage.NewInMemory(storage.Options{})
	ctx, stop := context.WithCancel(t.Context())
	var running sync.WaitGroup
	defer running.Wait()
	defer stop()
	var hooks []*notify.Notifier
	for range 2 {
		node, err := openCluster(ctx, cfg, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(node.close) // after the deliverers stop
		if err := node.join(ctx, cfg, "127.0.0.1:5000"); err != nil {
			t.Fatal(err)
		}
		n, err := newNotifier(ctx, cfg, store, node, metrics.New(), "127.0.0.1:5000", slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		running.Go(func() { n.Run(ctx) })
		hooks = append(hooks, n)
	}
	for i, tag := range []string{"v1", "v2", "v3", "v4"} {
		if err := hooks[i%2].Publish(t.Context(), notify.Event{Type: notify.Push, Repo: "app", Tag: tag}); err != nil {
			t.Fatal(err)
		}
	}
	if stored, err := store.Events(t.Context()); err != nil || len(stored) != 0 {
		t.Errorf("the store's outbox holds %d events (%v), want none", len(stored), err)
	}
	var tags []string
	for len(tags) < 4 {
		select {
		case tag := <-got:
			tags = append(tags, tag)
		case <-time.After(time.Minute):
			t.Fatalf("delivered %v within a minute", tags)
		}
	}
	if strings.Join(tags, ",") != "v1,v2,v3,v4" {
		t.Errorf("delivered %v, want [v1 v2 v3 v4]", tags)
	}
}
