package buildhook

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kiln/config"
	"kiln/registry"
)

type doneBuild struct {
	rule, result string
	ran          time.Duration
}

func TestOnBuildDoneHearsEveryResult(t *testing.T) {
	t.Parallel()
	store, moves := newTriggeredStore()
	srv := httptest.NewServer(registry.New(store, registry.Options{}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	for rel, content := range map[string]string{
		"ok/Dockerfile":  "ARG REGISTRY\nFROM ${REGISTRY}/base:1\nCOPY a.txt /a.txt\n",
		"ok/a.txt":       "a",
		"bad/Dockerfile": "ARG REGISTRY\nFROM ${REGISTRY}/base:1\nCOPY missing.txt /m.txt\n",
	} {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := map[string]string{"REGISTRY": host}
	rules, err := LoadRules([]config.Build{
		{Name: "ok", Context: "ok", Dockerfile: "Dockerfile", Tags: []string{"ok:v1"}, Args: args, Builder: "native", Strategy: "build"},
		{Name: "bad", Context: "bad", Dockerfile: "Dockerfile", Tags: []string{"bad:v1"}, Args: args, Builder: "native", Strategy: "build"},
	}, dir, []string{host}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var done []doneBuild
	statuses := map[string][]string{} // rule -> statuses in order
	var okTags []string
	svc, err := NewService(ServiceOptions{Store: store, TagMoves: moves, Rules: rules, Registry: host, Hosts: []string{host}, Concurrency: 2,
		OnStatus: func(c StatusChange) {
			mu.Lock()
			statuses[c.Record.Rule] = append(statuses[c.Record.Rule], c.Record.Status)
			if c.Record.Rule == "ok" && c.Record.Status == StatusSucceeded && c.Record.Result != "" {
				for _, t := range c.Tags {
					okTags = append(okTags, t.String())
				}
			}
			mu.Unlock()
		},
		OnBuildDone: func(rule, result string, ran time.Duration) {
			mu.Lock()
			done = append(done, doneBuild{rule, result, ran})
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); svc.Wait() }()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c := &chain{store: store, svc: svc, host: host}
	c.pushBase(t)
	c.waitIdle(t)
	if q, r := svc.Counts(); q != 0 || r != 0 {
		t.Errorf("idle service counts %d queued, %d running", q, r)
	}

	mu.Lock()
	defer mu.Unlock()
	got := map[string]doneBuild{}
	for _, d := range done {
		got[d.rule] = d
	}
	if len(done) != 2 || got["ok"].result != StatusSucceeded || got["bad"].result != StatusFailed {
		t.Fatalf("OnBuildDone heard %+v, want ok succeeded and bad failed", done)
	}
	// OnStatus heard each build queued, start and end, in that order.
	if got := strings.Join(statuses["ok"], ","); got != "queued,running,succeeded" {
		t.Errorf("OnStatus heard ok %s", got)
	}
	if got := strings.Join(statuses["bad"], ","); got != "queued,running,failed" {
		t.Errorf("OnStatus heard bad %s", got)
	}
	if len(okTags) != 1 || !strings.HasSuffix(okTags[0], "ok:v1") {
		t.Errorf("the success moved %v, want ok:v1", okTags)
	}
	for _, d := range done {
		if d.ran <= 0 {
			t.Errorf("build of %s ran %s, want a positive duration", d.rule, d.ran)
		}
	}
	// The records say the same.
	recs, err := svc.Records().List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if want := got[r.Rule].result; r.Status != want {
			t.Errorf("record of %s is %s, the hook heard %s", r.Rule, r.Status, want)
		}
	}
}
