package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"kiln/config"
	"kiln/registry"
	"kiln/storage"
)

// imageBytes is what an image holds: manifest, config and layers.
func imageBytes(t *testing.T, img v1.Image) int64 {
	t.Helper()
	m, _ := img.RawManifest()
	c, _ := img.RawConfigFile()
	n := int64(len(m) + len(c))
	layers, _ := img.Layers()
	for _, l := range layers {
		size, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		n += size
	}
	return n
}

// kiln cache usage and evict against a running kiln that mirrors an
// upstream, with a budget of one image of its own: each fill over it
// evicts the least recently pulled, a pushed image (and a cached one it
// shares everything with) stays whole, and the evicted one pulls again
// from the upstream.
func TestCacheCommands(t *testing.T) {
	t.Parallel()
	var blobFetches atomic.Int64
	up := registry.New(storage.NewInMemory(storage.Options{}), registry.Options{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			blobFetches.Add(1)
		}
		up.ServeHTTP(w, r)
	}))
	defer upstream.Close()
	upHost := strings.TrimPrefix(upstream.URL, "http://")
	imgs := map[string]v1.Image{}
	for _, n := range []string{"one", "two", "three"} {
		img, err := random.Image(64<<10, 2)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.ParseReference(upHost+"/lib/"+n+":1", name.Insecure)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		imgs[n] = img
	}

	cfg := testConfig(t)
	cfg.Proxy = []config.Upstream{{Name: "up.test", URL: upstream.URL, TTL: time.Hour, Timeout: 10 * time.Second, WatchInterval: time.Hour}}
	// three is also pushed, so shared: one and two hold bytes of their
	// own, and the budget fits one of them.
	budget := imageBytes(t, imgs["one"]) + 1024
	cfg.Cache = config.Cache{MaxSize: config.Size{Bytes: budget}, CheckInterval: time.Hour}
	cfg.Storage.GC.Grace = time.Nanosecond // the collection after an eviction frees at once
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	addr, stop := startServe(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	server := "http://" + addr
	pull := func(repo string) {
		t.Helper()
		ref, _ := name.ParseReference(addr+"/"+repo, name.Insecure)
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Fatalf("%s: %v", repo, err)
		}
	}
	kiln := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		cmd := newRootCmd()
		cmd.SetOut(&out)
		cmd.SetArgs(append(append([]string{"cache"}, args...), "--server", server))
		if err := cmd.ExecuteContext(t.Context()); err != nil {
			t.Fatalf("kiln cache %v: %v", args, err)
		}
		return out.String()
	}

	// A pushed image, and one of the mirror's images pushed too: shared.
	pushed, _ := random.Image(64<<10, 2)
	for _, repo := range []string{"team/app:v1", "team/copy:v1"} {
		ref, _ := name.ParseReference(addr+"/"+repo, name.Insecure)
		img := pushed
		if repo == "team/copy:v1" {
			img = imgs["three"]
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
	}
	// images waits until the cache holds n images: eviction follows a
	// fill, in the background.
	images := func(n int) string {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			out := kiln("usage")
			if strings.Contains(out, fmt.Sprintf("cached:  %d images", n)) {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cache never held %d images:\n%s", n, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// one, then two: over budget, so one, the least recently pulled, goes.
	pull("up.test/lib/one:1")
	pull("up.test/lib/two:1")
	images(1)
	// three is pushed too: it holds nothing of its own and fits.
	pull("up.test/lib/three:1")
	// (Each fill is followed by an eviction, most of which take nothing:
	// the count to check is the metric's, at the end.)
	if out := images(2); !strings.Contains(out, storage.FormatBytes(imageBytes(t, imgs["three"]))+" shared") || !strings.Contains(out, "last eviction:") {
		t.Errorf("kiln cache usage:\n%s", out)
	}
	// Within budget: nothing to evict.
	if out := kiln("evict", "--dry-run"); strings.Contains(out, "would evict") || !strings.Contains(out, "(2 images)") {
		t.Errorf("kiln cache evict --dry-run:\n%s", out)
	}

	// Everything kept verifies without the upstream; the evicted image
	// comes back from it, and two, now the least recently pulled, goes.
	before := blobFetches.Load()
	for _, repo := range []string{"team/app:v1", "team/copy:v1", "up.test/lib/two:1", "up.test/lib/three:1"} {
		pull(repo)
	}
	if n := blobFetches.Load(); n != before {
		t.Errorf("kept images fetched %d blobs from the upstream", n-before)
	}
	pull("up.test/lib/one:1")
	if n := blobFetches.Load() - before; n < 3 {
		t.Errorf("the evicted image fetched %d blobs again, want its config and 2 layers", n)
	}
	images(2)
	if out := kiln("evict"); !strings.Contains(out, "(2 images)") {
		t.Errorf("kiln cache evict:\n%s", out)
	}

	// The storage page shows the cache.
	page, err := http.Get(server + "/ui/storage")
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(html), "Pull-through cache") || !strings.Contains(string(html), "</strong> cached images of a <strong>"+storage.FormatBytes(budget)) {
		t.Errorf("the storage page does not show the cache:\n%s", html)
	}

	resp, err := http.Get(server + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"kiln_cache_evicted_images_total 2", "kiln_cache_budget_bytes " + strconv.FormatInt(budget, 10)} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	stop() // the log is complete once kiln has stopped
	if !strings.Contains(logs.String(), "cache: evicting") || !strings.Contains(logs.String(), "trigger=fill") || !strings.Contains(logs.String(), "trigger=cache") {
		t.Errorf("the log does not tell the eviction and its collection:\n%s", logs.String())
	}
}

// Below cache.min_free, the keeper evicts at once, as much as the store is
// short of, least recently pulled first, and collects it.
func TestCacheKeeperFreesSpaceFirst(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		store := storage.NewInMemory(storage.Options{})
		pulls := storage.NewPullLog(store)
		var sizes []int64
		for _, n := range []string{"old", "mid", "new"} {
			img, _ := random.Image(4<<10, 1)
			m, _ := img.RawManifest()
			c, _ := img.RawConfigFile()
			d, _ := img.Digest()
			layers, _ := img.Layers()
			if _, err := store.PutBlob(ctx, "up.test/"+n, digest.FromBytes(c), bytes.NewReader(c)); err != nil {
				t.Fatal(err)
			}
			for _, l := range layers {
				ld, _ := l.Digest()
				rc, _ := l.Compressed()
				if _, err := store.PutBlob(ctx, "up.test/"+n, digest.Digest(ld.String()), rc); err != nil {
					t.Fatal(err)
				}
				rc.Close()
			}
			mt, _ := img.MediaType()
			parsed, err := storage.ParseManifest(string(mt), m)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.PutManifest(ctx, "up.test/"+n, storage.Manifest{Digest: digest.Digest(d.String()), MediaType: string(mt), Content: m}, parsed, "1"); err != nil {
				t.Fatal(err)
			}
			if err := store.MarkProxied(ctx, "up.test/"+n); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Minute) // fake time: pulled a minute apart, oldest first
			pulls.Note("up.test/"+n, digest.Digest(d.String()))
			sizes = append(sizes, imageBytes(t, img))
		}
		var logs syncBuffer
		free := sizes[0] / 2 // short of half an image
		k := &cacheKeeper{
			store: store, pulls: pulls, logger: slog.New(slog.NewTextHandler(&logs, nil)), now: time.Now, root: "/store",
			cfg: config.Cache{MinFree: config.Size{Bytes: sizes[0]}, CheckInterval: time.Hour},
			gc:  config.GC{Grace: time.Nanosecond},
			statfs: func(path string, st *unix.Statfs_t) error {
				st.Bsize, st.Blocks, st.Bavail = 1, 1<<30, uint64(free)
				return nil
			},
		}
		loopCtx, stop := context.WithCancel(ctx)
		defer stop()
		go k.loop(loopCtx)
		time.Sleep(freeSpaceInterval + time.Second)
		synctest.Wait()
		stop()
		if _, err := store.ResolveTag(ctx, "up.test/old", "1"); !errors.Is(err, storage.ErrTagUnknown) {
			t.Errorf("the least recently pulled image is still there: %v\n%s", err, logs.String())
		}
		for _, n := range []string{"mid", "new"} {
			if _, err := store.ResolveTag(ctx, "up.test/"+n, "1"); err != nil {
				t.Errorf("%s was evicted too: %v", n, err)
			}
		}
		if !strings.Contains(logs.String(), "the store is low on space") || !strings.Contains(logs.String(), "why=\"low on space\"") {
			t.Errorf("log:\n%s", logs.String())
		}
	})
}

// budgetKeeper bounds an empty in-memory store's cache to 1 MiB, checked
// hourly, logging to logs.
func budgetKeeper(logs *syncBuffer) *cacheKeeper {
	return &cacheKeeper{
		store: storage.NewInMemory(storage.Options{}), logger: slog.New(slog.NewTextHandler(logs, nil)), now: time.Now,
		cfg: config.Cache{MaxSize: config.Size{Bytes: 1 << 20}, CheckInterval: time.Hour},
		gc:  config.GC{Grace: time.Hour}, fills: make(chan struct{}, 1),
	}
}

// Fills that keep the cache within its budget, by the last measure and
// what was filled since, start no eviction (no walk of the store); one
// that takes it over does.
func TestCacheFillsWithinBudgetCostNoWalk(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		k := budgetKeeper(&logs)
		ctx, stop := context.WithCancel(t.Context())
		defer stop()
		go k.loop(ctx)
		// Before any measure a fill may have taken the cache over: it is
		// measured.
		k.filled("up.test/a", 100)
		synctest.Wait()
		if n := strings.Count(logs.String(), "trigger=fill"); n != 1 {
			t.Fatalf("%d evictions after the first fill, want 1 (nothing measured yet):\n%s", n, logs.String())
		}
		for range 10 {
			k.filled("up.test/a", 50<<10) // 500 KiB in all: within 1 MiB
			time.Sleep(time.Second)
			synctest.Wait()
		}
		if n := strings.Count(logs.String(), "trigger=fill"); n != 1 {
			t.Errorf("fills within the budget started %d more evictions", n-1)
		}
		k.filled("up.test/a", 600<<10) // now over, by the estimate
		time.Sleep(time.Second)
		synctest.Wait()
		if n := strings.Count(logs.String(), "trigger=fill"); n != 2 {
			t.Errorf("a fill over the budget started %d evictions, want 1", n-1)
		}
	})
}

// The scheduled check is checkLoop's, which a cluster runs on one
// instance: it evicts every check interval; loop, which every instance
// runs, does not.
func TestCacheScheduledCheckIsCheckLoops(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		k := budgetKeeper(&logs)
		ctx, stop := context.WithCancel(t.Context())
		defer stop()
		go k.loop(ctx)
		time.Sleep(2*time.Hour + time.Minute)
		synctest.Wait()
		if n := strings.Count(logs.String(), "trigger=schedule"); n != 0 {
			t.Fatalf("loop ran %d scheduled evictions, want none:\n%s", n, logs.String())
		}
		go k.checkLoop(ctx)
		time.Sleep(2*time.Hour + time.Minute)
		synctest.Wait()
		if n := strings.Count(logs.String(), "trigger=schedule"); n != 2 {
			t.Errorf("checkLoop ran %d scheduled evictions in two intervals, want 2:\n%s", n, logs.String())
		}
	})
}
