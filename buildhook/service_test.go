package buildhook

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kiln/buildhook/build"
	"kiln/config"
	"kiln/registry"
	"kiln/storage"
)

// chain is an in-process kiln with build-on-push over a three-level chain:
// base:1 -> app:v1 -> tests:v1, all built natively.
type chain struct {
	store *storage.Store
	moves *TagMoves
	svc   *Service
	host  string
}

func newChain(t *testing.T) *chain {
	t.Helper()
	return newChainWith(t, "build")
}

// newChainWith is newChain with app built by strategy (build, rebase).
func newChainWith(t *testing.T, strategy string) *chain {
	t.Helper()
	store, moves := newTriggeredStore()
	srv := httptest.NewServer(registry.New(store, registry.Options{DeleteEnabled: true}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("app/Dockerfile", "ARG REGISTRY\nFROM ${REGISTRY}/base:1\nCOPY a.txt /app/a.txt\nCMD [\"/app/a.txt\"]\n")
	write("app/a.txt", "app")
	// tests builds on app and, in a first stage, on base too: a base push
	// must still build it once, after app.
	write("tests/Dockerfile", "ARG REGISTRY\nFROM ${REGISTRY}/base:1 AS b\nFROM ${REGISTRY}/app:v1\nCOPY b.txt /app/b.txt\n")
	write("tests/b.txt", "tests")
	builds := []config.Build{
		{Name: "app", Context: "app", Dockerfile: "Dockerfile", Tags: []string{"app:v1"}, Args: map[string]string{"REGISTRY": host}, Builder: "native", Strategy: strategy},
		{Name: "tests", Context: "tests", Dockerfile: "Dockerfile", Tags: []string{"tests:v1"}, Args: map[string]string{"REGISTRY": host}, Builder: "auto", Strategy: "build"},
	}
	rules, err := LoadRules(builds, dir, []string{host}, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := startService(t, ServiceOptions{Store: store, TagMoves: moves, Rules: rules, Registry: host, Hosts: []string{host}, Concurrency: 2})
	return &chain{store: store, moves: moves, svc: svc, host: host}
}

// startService starts a service on opts, stopped (and waited for) when
// the test ends, or earlier by the returned cancel.
func startService(t *testing.T, opts ServiceOptions) (*Service, context.CancelFunc) {
	t.Helper()
	svc, err := NewService(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); svc.Wait() })
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return svc, cancel
}

func (c *chain) pushBase(t *testing.T) v1.Hash {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(c.host+"/base:1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d
}

func (c *chain) waitIdle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.svc.WaitIdle(ctx); err != nil {
		t.Fatalf("builds did not finish: %v", err)
	}
}

func (c *chain) annotations(t *testing.T, repoTag string) map[string]string {
	t.Helper()
	ref, _ := name.ParseReference(c.host+"/"+repoTag, name.Insecure)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Annotations
}

func (c *chain) digestOf(t *testing.T, repoTag string) string {
	t.Helper()
	repo, tag, _ := strings.Cut(repoTag, ":")
	d, err := c.store.ResolveTag(t.Context(), repo, tag)
	if err != nil {
		t.Fatal(err)
	}
	return string(d)
}

func TestServiceCascade(t *testing.T) {
	t.Parallel()
	c := newChain(t)
	for round := 1; round <= 2; round++ {
		base := c.pushBase(t)
		c.waitIdle(t)
		recs, err := c.svc.Records().List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2*round {
			t.Fatalf("round %d: %d build records, want %d: %+v", round, len(recs), 2*round, recs)
		}
		// Newest first: tests, then app, each once per round, in order.
		if recs[0].Rule != "tests" || recs[1].Rule != "app" {
			t.Errorf("round %d: build order %s, %s; want app then tests", round, recs[1].Rule, recs[0].Rule)
		}
		for _, r := range recs[:2] {
			if r.Status != StatusSucceeded || r.Result == "" || r.Builder != "native" {
				t.Errorf("round %d: build %+v", round, r)
			}
		}
		app := c.annotations(t, "app:v1")
		if app[build.AnnotationBaseDigest] != base.String() || !strings.HasSuffix(app[build.AnnotationBaseName], "/base:1") || app[build.AnnotationBuildInputs] != recs[1].Inputs.String() {
			t.Errorf("round %d: app annotations %v, want base digest %s", round, app, base)
		}
		tests := c.annotations(t, "tests:v1")
		if tests[build.AnnotationBaseDigest] != c.digestOf(t, "app:v1") {
			t.Errorf("round %d: tests built on %s, app is %s", round, tests[build.AnnotationBaseDigest], c.digestOf(t, "app:v1"))
		}
		// No staging tags are left behind.
		for _, repo := range []string{"app", "tests"} {
			tags, _ := c.store.Tags(t.Context(), repo)
			if len(tags) != 1 {
				t.Errorf("round %d: %s tags %v", round, repo, tags)
			}
		}
	}
	// The build log was kept.
	recs, _ := c.svc.Records().List(t.Context())
	var log strings.Builder
	if err := c.svc.Records().FollowLog(t.Context(), recs[0].ID, &log, false); err != nil || !strings.Contains(log.String(), "builder native") {
		t.Errorf("log of %s: %v %q", recs[0].ID, err, log.String())
	}
}

// Re-pushing the same base digest triggers nothing.
func TestServiceSameDigestNoBuild(t *testing.T) {
	t.Parallel()
	c := newChain(t)
	img, _ := random.Image(256, 1)
	ref, _ := name.ParseReference(c.host+"/base:1", name.Insecure)
	for range 2 {
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		c.waitIdle(t)
	}
	recs, _ := c.svc.Records().List(t.Context())
	if len(recs) != 2 {
		t.Errorf("%d builds after pushing the same base twice, want 2 (app and tests once)", len(recs))
	}
}
