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
// are served from the cache at once, until the down window passes.
func TestHangingUpstreamRemembered(t *testing.T) {
	up := newUpstreamServer(t)
	img, _ := random.Image(1024, 2)
	want := up.push(t, "team/app", "v1", img)
	const timeout = 300 * time.Millisecond
	k := newKilnProxyTimeout(t, up, time.Millisecond, timeout) // every pull revalidates
	const window = 2 * time.Second
	k.proxy.upstreams["up.example"].health.setWindow(window)
	k.pull(t, "up.example/team/app:v1")

	up.hang.Store(true)
	time.Sleep(5 * time.Millisecond)
	if took := k.getManifest(t, "up.example/team/app:v1"); took < timeout-50*time.Millisecond || took > 5*timeout {
		t.Errorf("first stale pull with the upstream hanging took %s, want about the timeout %s", took, timeout)
	}
	downAt := time.Now() // the window started a little earlier, with the failure
	if n := up.hung.Load(); n != 1 {
		t.Errorf("first stale pull asked the hanging upstream %d times, want 1", n)
	}
	for i := range 5 {
		took := k.getManifest(t, "up.example/team/app:v1")
		if time.Since(downAt) > window {
			break // a loaded machine outran the window: nothing to check
		}
		if took > 100*time.Millisecond {
			t.Errorf("stale pull %d after the upstream hung took %s, want the cache at once", i+2, took)
		}
	}
	if got := k.pull(t, "up.example/team/app:v1"); got != want {
		t.Errorf("pull with the upstream hanging got %s, want the cached %s", got, want)
	}
	if n := up.hung.Load(); n != 1 && time.Since(downAt) < window {
		t.Errorf("pulls inside the down window asked the upstream %d times, want 1", n)
	}

	// After the window the upstream is asked again.
	time.Sleep(time.Until(downAt.Add(window)))
	before := up.hung.Load()
	if took := k.getManifest(t, "up.example/team/app:v1"); took < timeout-50*time.Millisecond {
		t.Errorf("stale pull after the down window took %s: did not ask the upstream", took)
	}
	if n := up.hung.Load() - before; n != 1 {
		t.Errorf("stale pull after the down window asked the upstream %d times, want 1", n)
	}

	// Back up: once the window passes, revalidations reach it again.
	up.hang.Store(false)
	k.proxy.upstreams["up.example"].health.setWindow(time.Millisecond)
	k.proxy.upstreams["up.example"].health.down(io.EOF) // restart with the short window
	time.Sleep(5 * time.Millisecond)
	before = up.requests.Load()
	k.getManifest(t, "up.example/team/app:v1")
	if up.requests.Load() == before {
		t.Errorf("revalidation after the upstream came back did not ask it")
	}
	if k.proxy.upstreams["up.example"].health.recentlyDown() {
		t.Errorf("upstream still counted as down after it answered")
	}
}

// A client hanging up in the middle of a blob leaves it cached, verified,
// and fetched once.
func TestClientHangupStillCachesBlob(t *testing.T) {
	up := newUpstreamServer(t)
	img, _ := random.Image(2<<20, 1)
	up.push(t, "team/big", "v1", img)
	layers, _ := img.Layers()
	h, _ := layers[0].Digest()
	d := digest.Digest(h.String())
	k := newKilnProxy(t, up, time.Hour)
	up.slowBlobs.Store(true)

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
	resp.Body.Close() // hang up: the rest is unread
	hungUpAt := time.Now()

	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := k.proxy.store.BlobSize(ctx, "up.example/team/big", d); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("blob not cached 30s after the client hung up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if time.Since(hungUpAt) < 50*time.Millisecond {
		t.Logf("blob cached %s after the hang-up: the hang-up may not have been mid-blob", time.Since(hungUpAt))
	}

	up.slowBlobs.Store(false)
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
