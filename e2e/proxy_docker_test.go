package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ---------------------------------------------------------------- docker

// startMirrorDockerd starts a private dockerd with kiln as its registry
// mirror, a fresh data root and its own socket; it is stopped when the test
// ends.
func startMirrorDockerd(t *testing.T, mirror string) *dockerEnv {
	t.Helper()
	return launchDockerd(t, "kiln-e2e-mirrord-", "--registry-mirror", mirror)
}

// TestProxyDockerMirror: a Docker daemon with kiln as its registry mirror
// pulls busybox:latest through kiln, runs it, and after `docker rmi` pulls
// it again without kiln asking the upstream for anything.
func TestProxyDockerMirror(t *testing.T) {
	needRegistry(t)
	up := startUpstreamRegistry(t, false)
	img := busyboxImage(t)
	want := up.push(t, "library/busybox", "latest", img)
	cp := startCountingProxy(t, up.addr)
	k := startProxyKiln(t, mirrorPair(cp.URL, up, time.Hour, 5*time.Second), "")
	docker := startMirrorDockerd(t, "http://"+k.addr)

	docker.must(t, "pull", "busybox:latest")
	first := cp.snapshot()
	t.Logf("upstream requests for the first pull: %+v", first)
	for _, d := range blobDigests(t, img) {
		if n := cp.blobGetsOf(d); n != 1 {
			t.Errorf("blob %s: %d upstream GETs during the first pull, want 1 (through kiln, once)", d, n)
		}
	}
	resp, body := doHTTP(t, http.MethodGet, "http://"+k.addr+"/v2/library/busybox/tags/list", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"latest"`) {
		t.Errorf("kiln's tags/list of library/busybox: %s %s; want the cached latest tag", resp.Status, body)
	}
	if got := strings.TrimSpace(docker.must(t, "inspect", "--format", "{{index .RepoDigests 0}}", "busybox:latest")); !strings.HasSuffix(got, "@"+want) {
		t.Errorf("pulled busybox RepoDigests[0] = %q, want @%s", got, want)
	}
	if out := docker.must(t, "run", "--rm", "--network", "none", "busybox:latest", "/bin/busybox", "echo", "ok"); strings.TrimSpace(out) != "ok" {
		t.Errorf("docker run printed %q, want ok", out)
	}

	docker.must(t, "rmi", "busybox:latest")
	if r := docker.run(t, "image", "inspect", "busybox:latest"); r.Err == nil {
		t.Fatal("busybox:latest is still present after docker rmi")
	}
	docker.must(t, "pull", "busybox:latest")
	second := cp.snapshot().sub(first)
	t.Logf("upstream requests for the second pull: %+v", second)
	if second.BlobGET != 0 {
		t.Errorf("second pull: %d upstream blob GETs, want 0", second.BlobGET)
	}
	if second.ManifestGET+second.ManifestHEAD != 0 {
		t.Errorf("second pull inside the TTL: %d upstream manifest requests, want 0", second.ManifestGET+second.ManifestHEAD)
	}
	if out := docker.must(t, "run", "--rm", "--network", "none", "busybox:latest", "/bin/busybox", "echo", "ok"); strings.TrimSpace(out) != "ok" {
		t.Errorf("docker run after the second pull printed %q, want ok", out)
	}
}

// ---------------------------------------------------------------- skopeo

// ociLayoutDigests reads an oci: layout's single manifest digest and the
// set of blobs it holds.
func ociLayoutDigests(t *testing.T, dir string) (string, map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 {
		t.Fatalf("%s/index.json lists %d manifests, want 1: %s", dir, len(idx.Manifests), b)
	}
	blobs := map[string]bool{}
	entries, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	for _, e := range entries {
		blobs["sha256:"+e.Name()] = true
	}
	return idx.Manifests[0].Digest, blobs
}

// TestProxySkopeo: skopeo copies up.local/team/app:v1 out of kiln, which
// fetches it from an upstream behind basic auth; the digests are the
// upstream's, and a second copy makes no upstream request.
func TestProxySkopeo(t *testing.T) {
	needRegistry(t)
	skopeo := ensureTool(t, "skopeo", "skopeo")
	up := startUpstreamRegistry(t, true)
	img := ociImage(t, 3, 64<<10, 11)
	want := up.push(t, "team/app", "v1", img)
	cp := startCountingProxy(t, up.addr)
	k := startProxyKiln(t, mirrorPair(cp.URL, up, time.Hour, 5*time.Second), "")

	// Without credentials kiln cannot fill the cache: a clear error.
	anon := startProxyKiln(t, mirrorPair(cp.URL, &upstreamRegistry{}, time.Hour, 5*time.Second), "")
	if code, _, _ := manifestStatus(t, anon.addr, "up.local/team/app", "v1", 30*time.Second); code == http.StatusOK || code < 400 {
		t.Errorf("kiln without upstream credentials answered %d for up.local/team/app:v1, want an error", code)
	}
	base := cp.snapshot()

	copyOut := func(dst string) {
		mustRun(t, cmdOpts{Timeout: 2 * time.Minute}, skopeo, "copy", "--src-tls-verify=false",
			"docker://"+k.addr+"/up.local/team/app:v1", "oci:"+dst)
	}
	dir1 := filepath.Join(t.TempDir(), "oci1")
	copyOut(dir1)
	got, blobs := ociLayoutDigests(t, dir1)
	if got != want {
		t.Errorf("skopeo copied manifest %s, the upstream has %s", got, want)
	}
	for _, d := range blobDigests(t, img) {
		if !blobs[d] {
			t.Errorf("blob %s of the upstream image is not in the oci layout", d)
		}
		if n := cp.blobGetsOf(d); n != 1 {
			t.Errorf("blob %s: %d upstream GETs, want 1", d, n)
		}
	}
	first := cp.snapshot().sub(base)
	t.Logf("upstream requests for the first copy: %+v", first)
	if first.ManifestGET == 0 || first.BlobGET != len(blobDigests(t, img)) {
		t.Errorf("first copy: upstream requests %+v, want the manifest and each of the %d blobs fetched", first, len(blobDigests(t, img)))
	}

	before := cp.snapshot()
	dir2 := filepath.Join(t.TempDir(), "oci2")
	copyOut(dir2)
	if got2, _ := ociLayoutDigests(t, dir2); got2 != want {
		t.Errorf("second skopeo copy: manifest %s, want %s", got2, want)
	}
	if d := cp.snapshot().sub(before); d.Total() != 0 {
		t.Errorf("second copy inside the TTL made upstream requests: %+v, want none", d)
	}
}
