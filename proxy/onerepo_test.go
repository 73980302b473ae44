package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"kiln/registry"
	"kiln/storage"
)

// busyboxNames are the names of Docker Hub's library/busybox through kiln:
// with the docker.io prefix, as Docker Hub spells it and shortens it, and
// as a Docker daemon with kiln in registry-mirrors asks for it.
var busyboxNames = []string{"docker.io/library/busybox", "library/busybox", "docker.io/busybox", "busybox"}

// The names of one upstream repository are one cache entry: the upstream
// serves each manifest and blob once, the catalog lists the repository
// once, and every name answers every read.
func TestOneCacheEntryPerUpstreamRepository(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	img, _ := random.Image(1024, 2)
	want := up.push(t, "library/busybox", "1", img)
	k := newKilnProxy(t, up, time.Hour)
	for _, n := range busyboxNames {
		if got := k.pull(t, n+":1"); got != want {
			t.Fatalf("pull %s:1: %s, want %s", n, got, want)
		}
	}
	if n := up.served(http.MethodGet, "/v2/library/busybox/manifests/1"); n != 1 {
		t.Errorf("upstream served the manifest %d times for pulls by %d names, want 1", n, len(busyboxNames))
	}
	blobs := imageBlobs(t, img)
	for _, d := range blobs {
		if n := up.served(http.MethodGet, "/v2/library/busybox/blobs/"+d.String()); n != 1 {
			t.Errorf("upstream served blob %s %d times, want 1", d, n)
		}
	}

	if repos := catalog(t, k.host); !slices.Equal(repos, []string{"docker.io/library/busybox"}) {
		t.Errorf("catalog lists %q, want the one repository docker.io/library/busybox", repos)
	}

	before := up.requests.Load()
	for _, n := range busyboxNames {
		checkReads(t, k.host, n, want, blobs)
	}
	if d := up.requests.Load() - before; d != 0 {
		t.Errorf("reads of the cached image by every name asked the upstream %d times, want 0", d)
	}

	mine, _ := random.Image(1024, 1)
	for _, n := range busyboxNames {
		ref, _ := name.ParseReference(k.host+"/"+n+":1", name.Insecure)
		pushDenied(t, "push to "+n, remote.Write(ref, mine), "docker.io")
	}
	if got := k.pull(t, "library/busybox:1"); got != want {
		t.Errorf("after the refused pushes library/busybox:1 is %s, want the upstream's %s", got, want)
	}

	// The store is healthy, and GC keeps the one copy whole.
	k.proxy.Wait()
	store := k.proxy.store
	if r, err := store.Fsck(t.Context(), storage.FsckOptions{}, nil); err != nil || len(r.Problems) != 0 || len(r.Leftovers) != 0 {
		t.Errorf("fsck of the cache: %v; report %+v", err, r)
	}
	if r, err := store.GC(t.Context(), storage.GCOptions{DryRun: true}, nil); err != nil || r.BlobsSwept != 0 || r.BlobsMarked != len(blobs)+1 {
		t.Errorf("GC of the cache: %v; report %+v, want %d blobs marked (config, layers, manifest), none swept", err, r, len(blobs)+1)
	}
}

// imageBlobs lists img's config and layer digests.
func imageBlobs(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := []v1.Hash{cfg}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// catalog returns the repositories kiln lists.
func catalog(t *testing.T, host string) []string {
	t.Helper()
	var c struct {
		Repositories []string `json:"repositories"`
	}
	getJSON(t, "http://"+host+"/v2/_catalog", &c)
	return c.Repositories
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// checkReads checks every read of repo's cached image: its tags, its
// manifest by tag and digest and its blobs, with GET and HEAD.
func checkReads(t *testing.T, host, repo string, want v1.Hash, blobs []v1.Hash) {
	t.Helper()
	var tags struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	getJSON(t, "http://"+host+"/v2/"+repo+"/tags/list", &tags)
	if tags.Name != repo || !slices.Equal(tags.Tags, []string{"1"}) {
		t.Errorf("tags/list of %s: name %q tags %q, want %q [1]", repo, tags.Name, tags.Tags, repo)
	}
	for _, ref := range []string{"1", want.String()} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			body, hdr := read(t, method, "http://"+host+"/v2/"+repo+"/manifests/"+ref,
				http.Header{"Accept": {"application/vnd.docker.distribution.manifest.v2+json"}})
			if got := hdr.Get("Docker-Content-Digest"); got != want.String() {
				t.Errorf("%s %s manifest %s: digest %q, want %s", method, repo, ref, got, want)
			}
			if method == http.MethodGet && digest.FromBytes(body).String() != want.String() {
				t.Errorf("GET %s manifest %s: the body is not %s", repo, ref, want)
			}
		}
	}
	for _, d := range blobs {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			body, hdr := read(t, method, "http://"+host+"/v2/"+repo+"/blobs/"+d.String(), nil)
			if got := hdr.Get("Docker-Content-Digest"); got != d.String() {
				t.Errorf("%s %s blob %s: digest %q", method, repo, d, got)
			}
			if method == http.MethodGet && digest.FromBytes(body).String() != d.String() {
				t.Errorf("GET %s blob %s: the body does not match", repo, d)
			}
		}
	}
}

// read sends method url and returns the body and headers of its 200.
func read(t *testing.T, method, url string, h http.Header) ([]byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s %s: %s %s", method, url, resp.Status, body)
	}
	return body, resp.Header
}

// A copy an older kiln filled under a mirror name stays where it is: it
// answers that name, without the upstream, and still refuses pushes.
func TestMirrorCopyUnderMirrorNameKept(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	store := storage.NewInMemory(storage.Options{})
	old, _ := random.Image(1024, 1)
	plain := httptest.NewServer(registry.New(store, registry.Options{}))
	ref, _ := name.ParseReference(strings.TrimPrefix(plain.URL, "http://")+"/library/redis:7", name.Insecure)
	if err := remote.Write(ref, old); err != nil {
		t.Fatal(err)
	}
	plain.Close()
	if err := store.MarkProxied(t.Context(), "library/redis"); err != nil {
		t.Fatal(err)
	}
	want, _ := old.Digest()

	k := newKilnProxyStore(t, up, time.Hour, 2*time.Second, store)
	if got := k.pull(t, "library/redis:7"); got != want {
		t.Errorf("pull of the old copy: %s, want %s", got, want)
	}
	if n := up.requests.Load(); n != 0 {
		t.Errorf("pull of the old copy asked the upstream %d times", n)
	}
	mine, _ := random.Image(1024, 1)
	pushRef, _ := name.ParseReference(k.host+"/library/redis:7", name.Insecure)
	err := remote.Write(pushRef, mine)
	pushDenied(t, "push to the old copy", err, "docker.io")
	if err == nil || !strings.Contains(err.Error(), "DELETE of library/redis's") {
		t.Errorf("refusal %v does not name the old copy library/redis", err)
	}
}

func TestSplitNamePath(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ path, name, suffix string }{
		{"/v2/library/busybox/tags/list", "library/busybox", "/tags/list"},
		{"/v2/docker.io/busybox/manifests/1", "docker.io/busybox", "/manifests/1"},
		{"/v2/a/manifests/b/blobs/sha256:1", "a/manifests/b", "/blobs/sha256:1"},
		{"/v2/a/referrers/sha256:1", "a", "/referrers/sha256:1"},
		{"/v2/a/blobs/uploads/id", "", ""},      // an upload
		{"/v2/a/blobs/uploads/", "", ""},        // an upload
		{"/v2/_catalog", "", ""},                // no name
		{"/v2/manifests/1", "", ""},             // no name
		{"/kiln/v1/builds/manifests/1", "", ""}, // not the registry API
	} {
		name, suffix, ok := splitNamePath(c.path)
		if name != c.name || suffix != c.suffix || ok != (c.name != "") {
			t.Errorf("splitNamePath(%q) = %q %q %v, want %q %q", c.path, name, suffix, ok, c.name, c.suffix)
		}
	}
}

// Concurrent cold pulls by different names of one upstream repository
// wait for one fetch of each blob.
func TestConcurrentPullsByEveryNameFetchOnce(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	img, _ := random.Image(256<<10, 3)
	want := up.push(t, "library/busybox", "1", img)
	k := newKilnProxy(t, up, time.Hour)
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			if got := k.pull(t, busyboxNames[i%len(busyboxNames)]+":1"); got != want {
				t.Errorf("pull: %s, want %s", got, want)
			}
		})
	}
	wg.Wait()
	if n := up.blobGets.Load(); n != 4 {
		t.Errorf("12 concurrent cold pulls by %d names made %d upstream blob GETs, want 4 (one per blob)", len(busyboxNames), n)
	}
}

// A page of an alias's tag list links to the next page under the name
// asked for.
func TestTagListPagesKeepTheNameAskedFor(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	img, _ := random.Image(1024, 1)
	up.push(t, "library/busybox", "1", img)
	up.push(t, "library/busybox", "2", img)
	k := newKilnProxy(t, up, time.Hour)
	k.pull(t, "docker.io/library/busybox:1")
	k.pull(t, "docker.io/library/busybox:2")
	resp, err := http.Get("http://" + k.host + "/v2/library/busybox/tags/list?n=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	if page.Name != "library/busybox" || !slices.Equal(page.Tags, []string{"1"}) {
		t.Errorf("first page: %+v, want library/busybox [1]", page)
	}
	if link := resp.Header.Get("Link"); !strings.HasPrefix(link, "</v2/library/busybox/tags/list?") {
		t.Errorf("Link %q does not lead to library/busybox's next page", link)
	}
	if n := resp.Header.Get("Content-Length"); n == "" {
		t.Error("no Content-Length")
	}
}
