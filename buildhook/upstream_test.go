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
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kiln/buildhook/build"
	"kiln/config"
	"kiln/proxy"
	"kiln/registry"
	"kiln/storage"
)

// A rule FROM an upstream image rebuilds when the upstream tag moves, found
// by the proxy's poll: nobody pushes to kiln.
func TestUpstreamBaseWatched(t *testing.T) {
	t.Parallel()
	upstream := httptest.NewServer(registry.New(storage.NewInMemory(storage.Options{}), registry.Options{}))
	defer upstream.Close()
	upHost := strings.TrimPrefix(upstream.URL, "http://")

	store, moves := newTriggeredStore()
	p, err := proxy.New(store, []config.Upstream{{Name: "up.example", URL: upstream.URL, TTL: time.Hour, Timeout: 2 * time.Second, WatchInterval: 20 * time.Millisecond}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(store, registry.Options{Upstream: p}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM up.example/team/base:1\nCOPY a.txt /a.txt\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644)
	rules, err := LoadRules([]config.Build{{Name: "app", Context: dir, Dockerfile: "Dockerfile", Tags: []string{"app:v1"}, Builder: "auto", Strategy: "build"}},
		dir, []string{host}, []string{"up.example"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rules[0].Bases) != 1 || rules[0].Bases[0].String() != "up.example/team/base:1" {
		t.Fatalf("bases %v", rules[0].Bases)
	}
	builds := make(chan string, 16)
	svc, err := NewService(ServiceOptions{Store: store, TagMoves: moves, Rules: rules, Registry: host, Hosts: []string{host}, Upstreams: []string{"up.example"},
		OnBuildDone: func(rule, result string, ran time.Duration) { builds <- result }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); svc.Wait() }()
	svc.Start(ctx)

	pushUpstream := func() string {
		img, _ := random.Image(512, 1)
		ref, _ := name.ParseReference(upHost+"/team/base:1", name.Insecure)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return d.String()
	}
	var watched []proxy.WatchedTag
	for _, b := range svc.Graph().Watched() {
		watched = append(watched, proxy.WatchedTag{Repo: b.Repo, Tag: b.Tag})
	}
	first := pushUpstream()
	go p.Watch(ctx, watched)

	// Each build that ends may be the one on want: look after each.
	builtOn := func(want string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case result := <-builds:
				ref, _ := name.ParseReference(host+"/app:v1", name.Insecure)
				img, err := remote.Image(ref)
				if err != nil {
					t.Fatalf("a build %s, yet app:v1: %v", result, err)
				}
				if m, err := img.Manifest(); err == nil && m.Annotations[build.AnnotationBaseDigest] == want {
					return
				}
			case <-timeout:
				t.Fatalf("app:v1 never built on upstream base %s", want)
			}
		}
	}
	builtOn(first)
	builtOn(pushUpstream())
}
