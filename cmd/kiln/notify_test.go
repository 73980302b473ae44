package main

import (
	"encoding/json"
	"log/slog"
	"testing"

	"kiln/buildhook"
	"kiln/buildhook/build"
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
