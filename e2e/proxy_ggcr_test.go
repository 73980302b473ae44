package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// ---------------------------------------------------------------- Go client

// TestProxyConcurrentColdPulls: 20 go-containerregistry clients pull the
// same uncached 5-blob image at once; each blob is fetched upstream once.
func TestProxyConcurrentColdPulls(t *testing.T) {
	needRegistry(t)
	up := startUpstreamRegistry(t, true)
	img := ociImage(t, 4, 1<<20, 21)
	want := up.push(t, "team/cold", "v1", img)
	cp := startCountingProxy(t, up.addr)
	k := startProxyKiln(t, mirrorPair(cp.URL, up, time.Hour, 10*time.Second), "")

	const clients = 20
	var wg sync.WaitGroup
	errs := make([]error, clients)
	digests := make([]string, clients)
	start := make(chan struct{})
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ref, _ := name.ParseReference(k.addr+"/up.local/team/cold:v1", name.Insecure)
			digests[i], errs[i] = pullValidate(ref)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		} else if digests[i] != want {
			t.Errorf("client %d pulled %s, want %s", i, digests[i], want)
		}
	}
	c := cp.snapshot()
	t.Logf("upstream requests for %d concurrent cold pulls: %+v", clients, c)
	blobs := blobDigests(t, img)
	if len(blobs) != 5 {
		t.Fatalf("test image has %d blobs, want 5", len(blobs))
	}
	for _, d := range blobs {
		if n := cp.blobGetsOf(d); n != 1 {
			t.Errorf("blob %s: %d upstream GETs for %d concurrent pulls, want exactly 1", d, n, clients)
		}
	}
	if c.BlobGET != len(blobs) {
		t.Errorf("%d upstream blob GETs in all, want %d", c.BlobGET, len(blobs))
	}
	if c.ManifestGET != 1 {
		t.Errorf("%d upstream manifest GETs for %d concurrent pulls of one tag, want 1", c.ManifestGET, clients)
	}
	// The same image, un-prefixed through the docker.io entry, is another
	// repository to kiln but the same content; it still pulls and validates.
	if d := k.pull(t, "team/cold:v1"); d != want {
		t.Errorf("team/cold:v1 through the docker.io mirror: %s, want %s", d, want)
	}
}

// ---------------------------------------------------------------- upstream trouble

// TestProxyUpstreamDown: a cached image keeps pulling (by tag, past its TTL,
// and by digest) when the upstream is too slow, failing or gone; an image
// never cached fails promptly with a 5xx.
func TestProxyUpstreamDown(t *testing.T) {
	needRegistry(t)
	up := startUpstreamRegistry(t, true)
	img := ociImage(t, 2, 32<<10, 31)
	want := up.push(t, "team/app", "v1", img)
	up.push(t, "team/other", "v1", ociImage(t, 1, 1024, 32))
	cp := startCountingProxy(t, up.addr)
	const ttl = 500 * time.Millisecond
	const timeout = 2 * time.Second
	k := startProxyKiln(t, mirrorPair(cp.URL, up, ttl, timeout), "")

	if d := k.pull(t, "up.local/team/app:v1"); d != want {
		t.Fatalf("first pull: %s, want %s", d, want)
	}
	if d := k.pull(t, "team/app:v1"); d != want { // un-prefixed, via the docker.io entry
		t.Fatalf("first pull through the mirror name: %s, want %s", d, want)
	}

	check := func(what string) {
		t.Helper()
		// The TTL must pass on kiln's clock, in another process: nothing
		// to wait on but time. Then the tag is stale and kiln revalidates.
		time.Sleep(ttl + 200*time.Millisecond)
		before := cp.snapshot()
		start := time.Now()
		for _, s := range []string{"up.local/team/app:v1", "team/app:v1", "up.local/team/app@" + want} {
			if d := k.pull(t, s); d != want {
				t.Errorf("%s: pull %s: %s, want %s", what, s, d, want)
			}
		}
		t.Logf("%s: cached pulls took %s; upstream saw %+v", what, time.Since(start).Round(time.Millisecond), cp.snapshot().sub(before))
		code, _, took := manifestStatus(t, k.addr, "up.local/team/other", "v1", 30*time.Second)
		if code < 500 {
			t.Errorf("%s: never-cached up.local/team/other:v1 answered %d, want a 5xx", what, code)
		}
		if took > 3*timeout+5*time.Second {
			t.Errorf("%s: never-cached pull took %s to fail (timeout %s)", what, took, timeout)
		}
	}

	// Too slow: the counting proxy answers nothing.
	cp.hang.Store(true)
	check("upstream hanging")
	if c := cp.snapshot(); c.ManifestHEAD == 0 {
		t.Errorf("kiln never tried to revalidate the stale tag: %+v", c)
	}
	cp.hang.Store(false)

	// Stopped: the counting proxy answers 502.
	up.stop()
	check("upstream stopped")

	// Unreachable: nothing listens any more.
	cp.srv.CloseClientConnections()
	cp.srv.Listener.Close()
	check("upstream unreachable")

	b, _ := os.ReadFile(filepath.Join(k.dir, "kiln.log"))
	if !strings.Contains(string(b), "serving cached tag") {
		t.Errorf("kiln logged no line saying it served a cached tag while the upstream was down")
	}
}

// ---------------------------------------------------------------- tag moved

// TestProxyUpstreamTagMoved: a tag moved upstream is served from the cache
// until the TTL passes, then kiln serves the new digest. The same upstream
// is mirrored twice: as up.local with a 1s TTL, which must move on, and as
// docker.io with an hour's, which must not, however slow the machine.
func TestProxyUpstreamTagMoved(t *testing.T) {
	needRegistry(t)
	up := startUpstreamRegistry(t, false)
	v1d := up.push(t, "team/app", "v1", ociImage(t, 1, 4096, 41))
	cp := startCountingProxy(t, up.addr)
	const ttl = time.Second
	ups := mirrorPair(cp.URL, up, ttl, 5*time.Second)
	ups[0].TTL = time.Hour // docker.io: team/app:v1
	k := startProxyKiln(t, ups, "")

	if d := k.pull(t, "up.local/team/app:v1"); d != v1d {
		t.Fatalf("first pull: %s, want %s", d, v1d)
	}
	if d := k.pull(t, "team/app:v1"); d != v1d {
		t.Fatalf("first pull through the mirror name: %s, want %s", d, v1d)
	}
	v2d := up.push(t, "team/app", "v1", ociImage(t, 1, 4096, 42))
	if v2d == v1d {
		t.Fatal("the two upstream images have the same digest")
	}
	before := cp.snapshot()
	if _, d, _ := manifestStatus(t, k.addr, "team/app", "v1", 30*time.Second); d != v1d {
		t.Errorf("inside the TTL kiln answered %s, want the cached %s", d, v1d)
	}
	if c := cp.snapshot().sub(before); c.ManifestHEAD+c.ManifestGET != 0 {
		t.Errorf("inside the TTL kiln asked the upstream: %+v", c)
	}

	// up.local's TTL passes while we ask: the cached digest until then,
	// the moved tag's after.
	before = cp.snapshot()
	waitFor(t, ttl+30*time.Second, "up.local/team/app:v1 moves on after its TTL", func() (bool, string) {
		_, d, _ := manifestStatus(t, k.addr, "up.local/team/app", "v1", 30*time.Second)
		if d != v1d && d != v2d {
			t.Fatalf("kiln served %s for up.local/team/app:v1, neither %s nor the moved %s", d, v1d, v2d)
		}
		return d == v2d, d
	})
	c := cp.snapshot().sub(before)
	t.Logf("upstream requests after the TTL: %+v", c)
	if c.ManifestHEAD+c.ManifestGET == 0 {
		t.Errorf("kiln did not ask the upstream after the TTL: %+v", c)
	}
	if d := k.pull(t, "up.local/team/app:v1"); d != v2d {
		t.Errorf("after the TTL kiln serves %s, want the moved tag's %s", d, v2d)
	}
	// The old image is still there by digest, without the upstream.
	if d := k.pull(t, "up.local/team/app@"+v1d); d != v1d {
		t.Errorf("old image by digest: %s", d)
	}
}

// ---------------------------------------------------------------- watch

// TestProxyWatchRebuild: a native build rule FROM up.local/team/base:1 is
// built when the base appears upstream and rebuilt when the upstream tag
// moves, found by kiln's poll: nobody pushes to kiln.
func TestProxyWatchRebuild(t *testing.T) {
	needRegistry(t)
	up := startUpstreamRegistry(t, true)
	cp := startCountingProxy(t, up.addr)
	ctxDir := t.TempDir()
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM up.local/team/base:1\nCOPY hello.txt /hello.txt\n"), 0o644)
	os.WriteFile(filepath.Join(ctxDir, "hello.txt"), []byte("hello from kiln\n"), 0o644)
	ups := mirrorPair(cp.URL, up, time.Hour, 5*time.Second)
	ups[1].Watch = time.Second
	k := startProxyKiln(t, ups, fmt.Sprintf(`builds:
  - name: app-on-upstream
    context: %s
    tags: [team/derived:v1]
    builder: native
`, ctxDir))

	builtOn := func(want string) {
		t.Helper()
		waitFor(t, 30*time.Second, "team/derived:v1 built on "+want, func() (bool, string) {
			resp, body := doHTTP(t, http.MethodGet, "http://"+k.addr+"/v2/team/derived/manifests/v1", http.Header{"Accept": {acceptManifests}}, nil)
			if resp.StatusCode != http.StatusOK {
				return false, resp.Status
			}
			var m manifestDoc
			if err := json.Unmarshal(body, &m); err != nil {
				return false, err.Error()
			}
			base := m.Annotations["org.opencontainers.image.base.digest"]
			return base == want, "built on " + base
		})
	}

	start := time.Now()
	base1 := up.push(t, "team/base", "1", ociImage(t, 2, 8192, 61))
	builtOn(base1)
	t.Logf("built on upstream base v1 %s after %s", base1, time.Since(start).Round(time.Millisecond))
	if d := k.pull(t, "team/derived:v1"); d == "" {
		t.Error("derived image does not pull")
	}

	start = time.Now()
	base2 := up.push(t, "team/base", "1", ociImage(t, 2, 8192, 62))
	builtOn(base2)
	t.Logf("rebuilt on upstream base v2 %s after %s", base2, time.Since(start).Round(time.Millisecond))

	// Polling is HEAD only while the tag stands still: two polls (a
	// second apart) later, still no GET.
	before := cp.snapshot()
	waitFor(t, 30*time.Second, "two watch polls of the upstream", func() (bool, string) {
		c := cp.snapshot().sub(before)
		return c.ManifestHEAD >= 2, fmt.Sprintf("%+v", c)
	})
	c := cp.snapshot().sub(before)
	t.Logf("upstream requests while idle: %+v", c)
	if c.ManifestGET != 0 || c.BlobGET != 0 {
		t.Errorf("idle watch: upstream requests %+v, want manifest HEADs only", c)
	}
}
