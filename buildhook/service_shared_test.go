package buildhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/config"
	"kiln/registry"
)

// gateBuilder writes a line to the build's log, then waits for release.
type gateBuilder struct {
	entered chan string // job ids
	release chan struct{}
}

func (b *gateBuilder) Name() string { return "native" }

func (b *gateBuilder) Build(ctx context.Context, job *build.Job, log io.Writer) (digest.Digest, error) {
	fmt.Fprintf(log, "building on the first instance\n")
	b.entered <- job.ID
	select {
	case <-b.release:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return "", errors.New("the gate builder builds nothing")
}

// The finding: with two instances on one store, restarting one while the
// other ran a build made the restarted one run the build again ("build
// resumed after restart"). In a cluster, a start leaves others' builds
// alone, and the restarted instance follows the build's log live.
func TestSharedServiceRestartLeavesOthersBuilds(t *testing.T) {
	t.Parallel()
	pool := newDatabase(t)
	store, moves := newTriggeredStore()
	srv := httptest.NewServer(registry.New(store, registry.Options{}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	writeFile(t, dir, "app/Dockerfile", "FROM "+host+"/base:1\nCOPY a.txt /a.txt\n")
	writeFile(t, dir, "app/a.txt", "a")
	rules, err := LoadRules([]config.Build{{Name: "app", Context: "app", Dockerfile: "Dockerfile", Tags: []string{"app:v1"}, Builder: "native"}}, dir, []string{host}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string, b build.Builder, moves *TagMoves) *Service {
		svc, _ := startService(t, ServiceOptions{Store: store, TagMoves: moves, Rules: rules, Registry: host, Hosts: []string{host},
			Builders: map[string]build.Builder{"native": b},
			Shared:   &SharedOptions{Pool: pool, Instance: name, Renew: 50 * time.Millisecond, Lease: time.Second}})
		return svc
	}
	gate := &gateBuilder{entered: make(chan string, 2), release: make(chan struct{})}
	a := start("a", gate, moves)
	(&chain{host: host}).pushBase(t)
	id := recv(t, gate.entered, "the build on a")

	// b starts (a restart) while a builds.
	other := &gateBuilder{entered: make(chan string, 2), release: make(chan struct{})}
	close(other.release)
	b := start("b", other, nil)
	var followed bytes.Buffer
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := b.Records().FollowLog(context.Background(), id, &followed, true); err != nil {
			t.Errorf("following from b: %v", err)
		}
	})
	close(gate.release)
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case again := <-other.entered:
		t.Errorf("b ran build %s too", again)
	default:
	}
	recs, err := b.Records().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != id || recs[0].Status != StatusFailed || !strings.Contains(recs[0].Error, "gate builder") || recs[0].Instance != "a" {
		for _, r := range recs {
			t.Logf("record %s %s %s on %q: %q", r.ID, r.Reason, r.Status, r.Instance, r.Error)
		}
		t.Fatalf("%d records, want the one build a ran", len(recs))
	}
	for _, want := range []string{"build " + id + " of rule app", "building on the first instance", "the gate builder builds nothing"} {
		if !strings.Contains(followed.String(), want) {
			t.Errorf("b followed %q, missing %q", followed.String(), want)
		}
	}
}

func writeFile(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
