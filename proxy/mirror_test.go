package proxy

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"kiln/storage"
)

// pushDenied asserts that err is a 403 DENIED naming upstream.
func pushDenied(t *testing.T, what string, err error, upstream string) {
	t.Helper()
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusForbidden || !strings.Contains(err.Error(), "DENIED") || !strings.Contains(err.Error(), upstream) {
		t.Errorf("%s: %v, want 403 DENIED naming %s", what, err, upstream)
	}
}

// A repository the mirror filled refuses pushes, so revalidation can never
// replace a user's image with the upstream's; deleting the copy frees it.
func TestMirrorCopyRefusesPushes(t *testing.T) {
	t.Parallel()
	forStores(t, testMirrorCopyRefusesPushes)
}

// forStores runs f against a filesystem and an in-memory store.
func forStores(t *testing.T, f func(*testing.T, *storage.Store)) {
	fs, err := storage.NewFilesystem(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for kind, store := range map[string]*storage.Store{"filesystem": fs, "inmemory": storage.NewInMemory(storage.Options{})} {
		t.Run(kind, func(t *testing.T) { f(t, store) })
	}
}

func testMirrorCopyRefusesPushes(t *testing.T, store *storage.Store) {
	up := newUpstreamServer(t)
	theirs, _ := random.Image(1024, 1)
	upstreamDigest := up.push(t, "acme/api", "1.0", theirs)
	k := newKilnProxyStore(t, up, -1, 2*time.Second, store) // every pull revalidates
	if got := k.pull(t, "acme/api:1.0"); got != upstreamDigest {
		t.Fatalf("mirror pull: %s, want %s", got, upstreamDigest)
	}

	mine, _ := random.Image(1024, 1)
	ref, _ := name.ParseReference(k.host+"/acme/api:1.0", name.Insecure)
	pushDenied(t, "push to a mirror copy", remote.Write(ref, mine), "docker.io")
	if got := k.pull(t, "acme/api:1.0"); got != upstreamDigest {
		t.Errorf("the mirror copy now serves %s, want the upstream's %s", got, upstreamDigest)
	}
	prefixed, _ := name.ParseReference(k.host+"/up.example/acme/api:1.0", name.Insecure)
	pushDenied(t, "push to an upstream's prefix", remote.Write(prefixed, mine), "up.example")

	// The copy is kept under the prefixed name, which the refusal names.
	if err := remote.Write(ref, mine); err == nil || !strings.Contains(err.Error(), "docker.io/acme/api") {
		t.Errorf("push to a mirror copy: %v, want a refusal naming the copy docker.io/acme/api", err)
	}

	// The operator deletes the copy; the name is free for a push, whose
	// pulls never go upstream.
	req, _ := http.NewRequest(http.MethodDelete, "http://"+k.host+"/v2/docker.io/acme/api/manifests/1.0", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete the mirror copy's tag: %v %v", err, resp)
	}
	resp.Body.Close()
	if err := remote.Write(ref, mine); err != nil {
		t.Fatalf("push after the copy was deleted: %v", err)
	}
	mineDigest, _ := mine.Digest()
	before := up.requests.Load()
	if got := k.pull(t, "acme/api:1.0"); got != mineDigest {
		t.Errorf("pull of the pushed repository: %s, want the pushed %s", got, mineDigest)
	}
	if n := up.requests.Load() - before; n != 0 {
		t.Errorf("pull of the pushed repository asked the upstream %d times", n)
	}
	// The prefixed name is still the upstream's.
	if got := k.pull(t, "docker.io/acme/api:1.0"); got != upstreamDigest {
		t.Errorf("prefixed pull beside the pushed mirror name: %s, want the upstream's %s", got, upstreamDigest)
	}
	if got := k.pull(t, "acme/api:1.0"); got != mineDigest {
		t.Errorf("pull of the pushed repository after a prefixed pull: %s, want the pushed %s", got, mineDigest)
	}
}

// A local nginx/conf does not shadow the mirror name nginx.
func TestLocalNameDoesNotShadowMirrorName(t *testing.T) {
	t.Parallel()
	forStores(t, testLocalNameDoesNotShadowMirrorName)
}

func testLocalNameDoesNotShadowMirrorName(t *testing.T, store *storage.Store) {
	up := newUpstreamServer(t)
	img, _ := random.Image(1024, 1)
	want := up.push(t, "library/nginx", "1", img)
	k := newKilnProxyStore(t, up, time.Hour, 2*time.Second, store)
	conf, _ := random.Image(1024, 1)
	ref, _ := name.ParseReference(k.host+"/nginx/conf:v1", name.Insecure)
	if err := remote.Write(ref, conf); err != nil {
		t.Fatal(err)
	}
	if got := k.pull(t, "nginx:1"); got != want {
		t.Errorf("mirror pull of nginx:1 beside a local nginx/conf: %s, want %s", got, want)
	}
}

// A blob pulled through the mirror before any manifest does not make its
// name a local repository.
func TestBlobPullKeepsNameMirrored(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	py, _ := random.Image(1024, 1)
	want := up.push(t, "library/python", "3", py)
	k := newKilnProxy(t, up, time.Hour)
	layers, _ := py.Layers()
	ld, _ := layers[0].Digest()
	resp, err := http.Get("http://" + k.host + "/v2/python/blobs/" + ld.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := k.pull(t, "python:3"); got != want {
		t.Errorf("mirror pull of python:3 after a blob pull: %s, want %s", got, want)
	}
}
