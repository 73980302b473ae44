package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"kiln/config"
	"kiln/registry"
	"kiln/storage"
)

// upstreamServer is a kiln registry behind bearer-token auth, counting the
// requests it serves.
type upstreamServer struct {
	srv      *httptest.Server
	host     string
	requests atomic.Int64
	blobGets atomic.Int64

	mu     sync.Mutex
	byPath map[string]int // "METHOD /v2/..." → requests answered

	hang atomic.Bool  // answer nothing until the test ends
	hung atomic.Int64 // requests that hang answered nothing
	// heldBlobs, when set, holds blob GETs after their first heldAfter
	// bytes until it is closed.
	heldBlobs atomic.Pointer[chan struct{}]
	release   chan struct{} // ends the hanging requests
}

const token = "test-token"

func newUpstreamServer(t *testing.T) *upstreamServer {
	t.Helper()
	u := &upstreamServer{release: make(chan struct{}), byPath: map[string]int{}}
	reg := registry.New(storage.NewInMemory(storage.Options{}), registry.Options{DeleteEnabled: true})
	var realm string
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			// The token endpoint wants the upstream's credentials.
			if user, pass, ok := r.BasicAuth(); !ok || user != "kiln" || pass != "secret" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Write([]byte(`{"token":"` + token + `"}`))
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`",service="upstream"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if u.hang.Load() {
			u.hung.Add(1)
			select {
			case <-u.release:
			case <-r.Context().Done():
			}
			return
		}
		u.requests.Add(1)
		u.mu.Lock()
		u.byPath[r.Method+" "+r.URL.Path]++
		u.mu.Unlock()
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			u.blobGets.Add(1)
			if held := u.heldBlobs.Load(); held != nil {
				w = &heldWriter{ResponseWriter: w, release: *held, done: r.Context().Done(), left: heldAfter}
			}
		}
		reg.ServeHTTP(w, r)
	}))
	realm = u.srv.URL + "/token"
	u.host = strings.TrimPrefix(u.srv.URL, "http://")
	t.Cleanup(u.srv.Close)
	t.Cleanup(func() { close(u.release) }) // runs first: Close waits for handlers
	return u
}

// served returns how many times the upstream answered method path.
func (u *upstreamServer) served(method, path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.byPath[method+" "+path]
}

// heldAfter is how much of a blob a held GET sends before it waits:
// enough for kiln to pass a client several chunks.
const heldAfter = 256 << 10

// heldWriter sends its first left bytes at once, then waits for release
// (or for the request to end) before sending the rest.
type heldWriter struct {
	http.ResponseWriter
	release <-chan struct{}
	done    <-chan struct{}
	left    int
}

func (h *heldWriter) Write(b []byte) (int, error) {
	n := 0
	if h.left > 0 {
		k := min(len(b), h.left)
		m, err := h.ResponseWriter.Write(b[:k])
		n, h.left, b = m, h.left-m, b[k:]
		if err != nil || len(b) == 0 {
			return n, err
		}
		if f, ok := h.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
	}
	select {
	case <-h.release:
	case <-h.done:
		return n, http.ErrAbortHandler
	}
	m, err := h.ResponseWriter.Write(b)
	return n + m, err
}

// push writes img to the upstream as repo:tag, authenticating as a client.
func (u *upstreamServer) push(t *testing.T, repo, tag string, img v1.Image) v1.Hash {
	t.Helper()
	ref, _ := name.ParseReference(u.host+"/"+repo+":"+tag, name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(&basicAuth{})); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d
}

type basicAuth struct{}

func (basicAuth) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: "kiln", Password: "secret"}, nil
}

// kilnProxy is kiln with the upstream configured as "up.example" and as the
// docker.io mirror.
type kilnProxy struct {
	proxy *Proxy
	host  string
}

func newKilnProxy(t *testing.T, up *upstreamServer, ttl time.Duration) *kilnProxy {
	t.Helper()
	return newKilnProxyTimeout(t, up, ttl, 2*time.Second)
}

func newKilnProxyTimeout(t *testing.T, up *upstreamServer, ttl, timeout time.Duration) *kilnProxy {
	t.Helper()
	return newKilnProxyStore(t, up, ttl, timeout, storage.NewInMemory(storage.Options{}))
}

func newKilnProxyStore(t *testing.T, up *upstreamServer, ttl, timeout time.Duration, store *storage.Store) *kilnProxy {
	t.Helper()
	ups := []config.Upstream{
		{Name: "up.example", URL: up.srv.URL, Username: "kiln", Password: "secret", TTL: ttl, Timeout: timeout},
		{Name: "docker.io", URL: up.srv.URL, Username: "kiln", Password: "secret", TTL: ttl, Timeout: timeout},
	}
	p, err := New(store, ups, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Aliases(registry.New(store, registry.Options{Upstream: p, DeleteEnabled: true})))
	t.Cleanup(func() {
		srv.Close()
		p.Wait() // commits still writing into the store's directory
	})
	return &kilnProxy{proxy: p, host: strings.TrimPrefix(srv.URL, "http://")}
}

// pull pulls and verifies repo:tag through kiln.
func (k *kilnProxy) pull(t *testing.T, repoTag string) v1.Hash {
	t.Helper()
	ref, _ := name.ParseReference(k.host+"/"+repoTag, name.Insecure)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull %s: %v", repoTag, err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("pull %s: %v", repoTag, err)
	}
	d, _ := img.Digest()
	return d
}

func TestPullThroughCachesOnce(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	img, _ := random.Image(4096, 3)
	want := up.push(t, "team/app", "v1", img)
	k := newKilnProxy(t, up, time.Hour)

	if got := k.pull(t, "up.example/team/app:v1"); got != want {
		t.Fatalf("pulled %s, want %s", got, want)
	}
	fetches := k.proxy.BlobFetches()
	if fetches != 4 { // config and three layers
		t.Errorf("cold pull fetched %d blobs upstream, want 4", fetches)
	}
	before := up.requests.Load()
	k.pull(t, "up.example/team/app:v1")
	if n := up.requests.Load() - before; n != 0 {
		t.Errorf("warm pull sent %d requests upstream, want 0", n)
	}
	// A digest reference needs no upstream either.
	ref, _ := name.ParseReference(k.host+"/up.example/team/app@"+want.String(), name.Insecure)
	if _, err := remote.Image(ref); err != nil {
		t.Fatal(err)
	}
	if n := up.requests.Load() - before; n != 0 {
		t.Errorf("pull by digest sent %d requests upstream", n)
	}
}

func TestMirrorNames(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	img, _ := random.Image(1024, 1)
	want := up.push(t, "library/python", "3.8", img)
	k := newKilnProxy(t, up, time.Hour)
	// As a Docker daemon with kiln in registry-mirrors asks for it.
	if got := k.pull(t, "library/python:3.8"); got != want {
		t.Errorf("mirror pull %s, want %s", got, want)
	}
	// Docker Hub's short name and the prefixed name reach the same image.
	if got := k.pull(t, "docker.io/python:3.8"); got != want {
		t.Errorf("prefixed pull %s, want %s", got, want)
	}
}

func TestConcurrentColdPullsFetchEachBlobOnce(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	img, _ := random.Image(256<<10, 4)
	up.push(t, "team/big", "v1", img)
	k := newKilnProxy(t, up, time.Hour)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { k.pull(t, "up.example/team/big:v1") })
	}
	wg.Wait()
	if n := up.blobGets.Load(); n != 5 {
		t.Errorf("20 concurrent cold pulls made %d upstream blob GETs, want 5 (one per blob)", n)
	}
}

func TestUpstreamDownServesCache(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	img, _ := random.Image(1024, 2)
	want := up.push(t, "team/app", "v1", img)
	k := newKilnProxy(t, up, -1) // every pull revalidates
	k.pull(t, "up.example/team/app:v1")
	up.srv.Close()
	if got := k.pull(t, "up.example/team/app:v1"); got != want {
		t.Errorf("with the upstream down got %s, want the cached %s", got, want)
	}
	// What was never cached fails clearly.
	ref, _ := name.ParseReference(k.host+"/up.example/team/other:v1", name.Insecure)
	_, err := remote.Image(ref)
	if err == nil || !strings.Contains(err.Error(), "502") && !strings.Contains(err.Error(), "not cached") {
		t.Errorf("uncached pull with the upstream down: %v", err)
	}
}

func TestTagRevalidatedAfterTTL(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	one, _ := random.Image(1024, 1)
	first := up.push(t, "team/app", "v1", one)
	const ttl = time.Hour
	k := newKilnProxy(t, up, ttl)
	clock := useTestClock(k.proxy)
	k.pull(t, "up.example/team/app:v1")
	two, _ := random.Image(1024, 1)
	moved := up.push(t, "team/app", "v1", two)
	before := up.requests.Load()
	if got := k.pull(t, "up.example/team/app:v1"); got != first {
		t.Errorf("inside the TTL got %s, want the cached %s", got, first)
	}
	if n := up.requests.Load() - before; n != 0 {
		t.Errorf("a pull inside the TTL asked the upstream %d times", n)
	}
	clock.advance(ttl)
	if got := k.pull(t, "up.example/team/app:v1"); got != moved {
		t.Errorf("after the TTL got %s, want the moved tag %s", got, moved)
	}
}

// Pushed repositories are not shadowed by the docker.io mirror.
func TestLocalRepositoryNotProxied(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	k := newKilnProxy(t, up, -1) // a proxied tag would be revalidated
	img, _ := random.Image(1024, 1)
	ref, _ := name.ParseReference(k.host+"/mine/app:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	before := up.requests.Load()
	k.pull(t, "mine/app:v1")
	if n := up.requests.Load() - before; n != 0 {
		t.Errorf("pull of a pushed repository asked the upstream %d times", n)
	}
}
