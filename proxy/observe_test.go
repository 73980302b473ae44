package proxy

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
)

// cacheCounts records what the cache observer hears.
type cacheCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func observeCache(p *Proxy) *cacheCounts {
	c := &cacheCounts{n: map[string]int{}}
	p.SetCacheObserver(func(kind, result string) {
		c.mu.Lock()
		c.n[kind+" "+result]++
		c.mu.Unlock()
	})
	return c
}

func (c *cacheCounts) get(kind, result string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[kind+" "+result]
}

func TestCacheObserverHitsAndMisses(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	img, _ := random.Image(1024, 2)
	want := up.push(t, "team/app", "v1", img)
	k := newKilnProxy(t, up, time.Hour)
	c := observeCache(k.proxy)

	k.pull(t, "up.example/team/app:v1")
	if got := c.get(KindManifest, ResultMiss); got != 1 {
		t.Errorf("cold pull: %d manifest misses, want 1", got)
	}
	// The config and two layers; each fetched upstream once. (A second read
	// of one before the store committed it waited for that fetch.)
	if got, fetched := c.get(KindBlob, ResultMiss), up.blobGets.Load(); got != 3 || fetched != 3 {
		t.Errorf("cold pull: %d blob misses and %d upstream blob GETs, want 3 and 3", got, fetched)
	}
	coalesced := c.get(KindBlob, ResultCoalesced)
	// The store commits a fetched blob after its client has it; a pull
	// before that waits for the fetch, and is a miss again.
	waitCached(t, k.proxy, "up.example/team/app", img)
	hits := c.get(KindBlob, ResultHit)
	k.pull(t, "up.example/team/app:v1")
	// validate.Image reads the config once and each layer twice.
	if got := c.get(KindBlob, ResultHit) - hits; got != 5 {
		t.Errorf("warm pull: %d blob hits, want 5 (one per blob GET)", got)
	}
	ref, _ := name.ParseReference(k.host+"/up.example/team/app@"+want.String(), name.Insecure)
	if _, err := remote.Image(ref); err != nil {
		t.Fatal(err)
	}
	if got := c.get(KindManifest, ResultHit); got != 2 {
		t.Errorf("warm pulls by tag and digest: %d manifest hits, want 2", got)
	}
	if got := c.get(KindManifest, ResultMiss); got != 1 {
		t.Errorf("warm pulls counted misses: %d in all, want 1", got)
	}
	if got := c.get(KindBlob, ResultMiss); got != 3 || c.get(KindBlob, ResultCoalesced) != coalesced {
		t.Errorf("warm pulls counted blob misses: %d in all, want 3", got)
	}
}

func TestCacheObserverRevalidatedAndStale(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	img, _ := random.Image(1024, 1)
	up.push(t, "team/app", "v1", img)
	k := newKilnProxy(t, up, -1) // every later pull finds the tag stale
	c := observeCache(k.proxy)

	k.pull(t, "up.example/team/app:v1")
	k.pull(t, "up.example/team/app:v1")
	if got := c.get(KindManifest, ResultRevalidated); got != 1 {
		t.Errorf("pull after the TTL: %d revalidations, want 1", got)
	}
	up.srv.Close()
	k.pull(t, "up.example/team/app:v1")
	if got := c.get(KindManifest, ResultStale); got != 1 {
		t.Errorf("pull with the upstream down: %d stale answers, want 1", got)
	}
	if got := c.get(KindManifest, ResultHit); got != 0 {
		t.Errorf("%d manifest hits, want 0: every pull after the first was past the TTL", got)
	}
}

// waitCached waits for the cache fills that outlived their pulls, and
// checks that the store holds img's config and layers in repo.
func waitCached(t *testing.T, p *Proxy, repo string, img v1.Image) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	p.Wait()
	for _, desc := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if _, err := p.store.BlobSize(t.Context(), repo, digest.Digest(desc.Digest.String())); err != nil {
			t.Fatalf("blob %s not cached: %v", desc.Digest, err)
		}
	}
}
