package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
)

// getManifest fetches repoTag's manifest through kiln and returns how long
// it took.
func (k *kilnProxy) getManifest(t *testing.T, repoTag string) time.Duration {
	t.Helper()
	ref, _ := name.ParseReference(k.host+"/"+repoTag, name.Insecure)
	start := time.Now()
	if _, err := remote.Get(ref); err != nil {
		t.Fatalf("get %s: %v", repoTag, err)
	}
	return time.Since(start)
}

// A hanging upstream costs its timeout once; the stale-tag pulls after it
// are served from the cache without asking it, until the down window
// passes.
func TestHangingUpstreamRemembered(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	img, _ := random.Image(1024, 2)
	want := up.push(t, "team/app", "v1", img)
	const timeout = 300 * time.Millisecond
	k := newKilnProxyTimeout(t, up, -1, timeout) // every pull revalidates
	clock := useTestClock(k.proxy)
	// Longer than any test run: the window ends when the clock is moved.
	const window = time.Hour
	health := &k.proxy.upstreams["up.example"].health
	health.setWindow(window)
	k.pull(t, "up.example/team/app:v1")

	up.hang.Store(true)
	if took := k.getManifest(t, "up.example/team/app:v1"); took < timeout-50*time.Millisecond {
		t.Errorf("first stale pull with the upstream hanging took %s, want the timeout %s at least", took, timeout)
	}
	if n := up.hung.Load(); n != 1 {
		t.Errorf("first stale pull asked the hanging upstream %d times, want 1", n)
	}
	if !health.recentlyDown() {
		t.Fatal("the upstream that timed out is not counted as down")
	}
	asked := up.requests.Load()
	for range 5 {
		k.getManifest(t, "up.example/team/app:v1")
	}
	if got := k.pull(t, "up.example/team/app:v1"); got != want {
		t.Errorf("pull with the upstream hanging got %s, want the cached %s", got, want)
	}
	if n, m := up.hung.Load(), up.requests.Load()-asked; n != 1 || m != 0 {
		t.Errorf("pulls inside the down window asked the hanging upstream %d times and got %d answers, want 1 and 0", n, m)
	}

	// After the window the upstream is asked again.
	clock.advance(window)
	if took := k.getManifest(t, "up.example/team/app:v1"); took < timeout-50*time.Millisecond {
		t.Errorf("stale pull after the down window took %s: did not wait for the upstream", took)
	}
	if n := up.hung.Load(); n != 2 {
		t.Errorf("stale pull after the down window: the hanging upstream was asked %d times in all, want 2", n)
	}

	// Back up: once the window passes, revalidations reach it again.
	up.hang.Store(false)
	clock.advance(window)
	before := up.requests.Load()
	k.getManifest(t, "up.example/team/app:v1")
	if up.requests.Load() == before {
		t.Errorf("revalidation after the upstream came back did not ask it")
	}
	if health.recentlyDown() {
		t.Errorf("upstream still counted as down after it answered")
	}
}

// A client hanging up in the middle of a blob leaves it cached, verified,
// and fetched once.
func TestClientHangupStillCachesBlob(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	img, _ := random.Image(2<<20, 1)
	up.push(t, "team/big", "v1", img)
	layers, _ := img.Layers()
	h, _ := layers[0].Digest()
	d := digest.Digest(h.String())
	k := newKilnProxy(t, up, time.Hour)
	release := make(chan struct{})
	up.heldBlobs.Store(&release)

	url := "http://" + k.host + "/v2/up.example/team/big/blobs/" + string(d)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET blob: %s", resp.Status)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // hang up: the rest is unread, and not even sent yet

	ctx := context.Background()
	if _, err := k.proxy.store.BlobSize(ctx, "up.example/team/big", d); err == nil {
		t.Fatal("blob cached before the upstream sent all of it")
	}
	close(release)
	k.proxy.Wait() // the fetch goes on without its client
	if _, err := k.proxy.store.BlobSize(ctx, "up.example/team/big", d); err != nil {
		t.Fatalf("blob not cached after the client hung up: %v", err)
	}

	up.heldBlobs.Store(nil)
	resp, err = http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, resp.Body); err != nil {
		t.Fatal(err)
	}
	if got := "sha256:" + hex.EncodeToString(sum.Sum(nil)); got != string(d) {
		t.Errorf("cached blob is %s, want %s", got, d)
	}
	if n := up.blobGets.Load(); n != 1 {
		t.Errorf("upstream served %d blob GETs, want 1", n)
	}
}
