package e2e

// End-to-end tests of kiln's pull-through cache (package proxy) with real
// clients: a Docker daemon using kiln as its registry mirror, skopeo and
// go-containerregistry, against an upstream that is Debian's docker-registry
// (CNCF Distribution 2.8) on loopback. A counting reverse proxy between kiln
// and the upstream tells how many requests of each kind kiln sent.

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// ---------------------------------------------------------------- upstream

// upstreamRegistry is a docker-registry (Distribution 2.8) serving from a
// temporary directory on loopback, optionally behind htpasswd basic auth.
type upstreamRegistry struct {
	addr       string // host:port
	user, pass string // empty when auth is off
	cmd        *exec.Cmd
	done       chan struct{}
	log        string
}

const (
	upstreamUser = "kiln"
	upstreamPass = "s3cret-pull"
)

// startUpstreamRegistry starts docker-registry; it is stopped when the test
// ends (or earlier with stop).
func startUpstreamRegistry(t *testing.T, withAuth bool) *upstreamRegistry {
	t.Helper()
	bin := ensureTool(t, "docker-registry", "docker-registry")
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	u := &upstreamRegistry{addr: fmt.Sprintf("127.0.0.1:%d", port), done: make(chan struct{}), log: filepath.Join(dir, "registry.log")}
	auth := ""
	if withAuth {
		htpasswd := ensureTool(t, "htpasswd", "apache2-utils")
		line := mustRun(t, cmdOpts{Quiet: true}, htpasswd, "-Bbn", upstreamUser, upstreamPass)
		file := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(file, []byte(strings.TrimSpace(line)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: kiln-e2e-upstream\n    path: %s\n", file)
		u.user, u.pass = upstreamUser, upstreamPass
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, filepath.Join(dir, "data"), u.addr, auth)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(u.log)
	if err != nil {
		t.Fatal(err)
	}
	u.cmd = exec.Command(bin, "serve", cfgPath)
	u.cmd.Stdout, u.cmd.Stderr = logf, logf
	u.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := u.cmd.Start(); err != nil {
		t.Fatalf("start docker-registry: %v", err)
	}
	go func() { u.cmd.Wait(); logf.Close(); close(u.done) }()
	t.Cleanup(func() {
		u.stop()
		if t.Failed() {
			b, _ := os.ReadFile(u.log)
			t.Logf("docker-registry log:\n%s", tail(string(b), 30))
		}
	})
	// /v2/ answers 401 when auth is on: wait for any HTTP answer.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + u.addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-u.done:
			b, _ := os.ReadFile(u.log)
			t.Fatalf("docker-registry exited at start:\n%s", tail(string(b), 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer on %s: %v", u.addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return u
}

func (u *upstreamRegistry) stop() {
	select {
	case <-u.done:
		return
	default:
	}
	_ = syscall.Kill(-u.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-u.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-u.cmd.Process.Pid, syscall.SIGKILL)
		<-u.done
	}
}

func (u *upstreamRegistry) authOpt() remote.Option {
	if u.user == "" {
		return remote.WithAuth(authn.Anonymous)
	}
	return remote.WithAuth(&authn.Basic{Username: u.user, Password: u.pass})
}

// push writes img to the upstream as repo:tag and returns its digest.
func (u *upstreamRegistry) push(t *testing.T, repo, tag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(u.addr+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, u.authOpt()); err != nil {
		t.Fatalf("pushing %s to the upstream: %v", ref, err)
	}
	d, _ := img.Digest()
	return d.String()
}

// ---------------------------------------------------------------- counting proxy

// upstreamCounts is what kiln sent upstream, by kind.
type upstreamCounts struct {
	ManifestGET, ManifestHEAD, BlobGET, BlobHEAD, Other int
}

func (c upstreamCounts) Total() int {
	return c.ManifestGET + c.ManifestHEAD + c.BlobGET + c.BlobHEAD + c.Other
}

func (c upstreamCounts) sub(o upstreamCounts) upstreamCounts {
	return upstreamCounts{c.ManifestGET - o.ManifestGET, c.ManifestHEAD - o.ManifestHEAD,
		c.BlobGET - o.BlobGET, c.BlobHEAD - o.BlobHEAD, c.Other - o.Other}
}

// countingProxy is a reverse proxy in front of the upstream that counts the
// requests kiln sends. In hang mode it answers nothing until the client
// gives up, like an upstream that is too slow.
type countingProxy struct {
	srv  *httptest.Server
	URL  string
	hang atomic.Bool
	stop chan struct{}

	mu       sync.Mutex
	counts   upstreamCounts
	blobGets map[string]int // digest → GETs
}

func startCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	tu, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(tu)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a stopped upstream is expected
	c := &countingProxy{blobGets: map[string]int{}, stop: make(chan struct{})}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.count(r)
		if c.hang.Load() {
			select {
			case <-r.Context().Done():
			case <-c.stop:
			case <-time.After(2 * time.Minute):
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	c.URL = c.srv.URL
	t.Cleanup(func() {
		close(c.stop)
		c.srv.CloseClientConnections()
		c.srv.Close()
	})
	return c
}

func (c *countingProxy) count(r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := r.URL.Path
	switch {
	case strings.Contains(p, "/manifests/") && r.Method == http.MethodGet:
		c.counts.ManifestGET++
	case strings.Contains(p, "/manifests/") && r.Method == http.MethodHead:
		c.counts.ManifestHEAD++
	case strings.Contains(p, "/blobs/") && !strings.Contains(p, "/blobs/uploads") && r.Method == http.MethodGet:
		c.counts.BlobGET++
		c.blobGets[p[strings.LastIndex(p, "/")+1:]]++
	case strings.Contains(p, "/blobs/") && r.Method == http.MethodHead:
		c.counts.BlobHEAD++
	default:
		c.counts.Other++
	}
}

func (c *countingProxy) snapshot() upstreamCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts
}

func (c *countingProxy) blobGetsOf(d string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blobGets[d]
}

// ---------------------------------------------------------------- kiln

// proxyUpstream is one entry of kiln's proxy: list.
type proxyUpstream struct {
	Name, URL, User, Pass string
	TTL, Timeout, Watch   time.Duration
}

// proxyKiln is a kiln started on its own config file with a proxy: section.
type proxyKiln struct {
	srv  *kilnServer
	addr string
	dir  string
}

// startProxyKiln writes a config with ups as its proxy: section (plus
// extra YAML, e.g. builds) into a temporary directory and starts kiln on it.
func startProxyKiln(t *testing.T, ups []proxyUpstream, extra string) *proxyKiln {
	t.Helper()
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	return startProxyKilnBin(t, bin, ups, extra)
}

var (
	kilnPlainOnce sync.Once
	kilnPlainBin  string
	kilnPlainErr  error
)

// buildKilnPlain builds kiln without the race detector, once per suite,
// for timings that mean something.
func buildKilnPlain() (string, error) {
	kilnPlainOnce.Do(func() {
		bin := filepath.Join(suiteTmp, "kiln-norace")
		build := exec.Command(goBin(), "build", "-o", bin, "./cmd/kiln")
		build.Dir = moduleRoot
		if out, err := build.CombinedOutput(); err != nil {
			kilnPlainErr = fmt.Errorf("go build ./cmd/kiln: %v\n%s", err, tail(string(out), 40))
			return
		}
		kilnPlainBin = bin
	})
	return kilnPlainBin, kilnPlainErr
}

func startProxyKilnBin(t *testing.T, bin string, ups []proxyUpstream, extra string) *proxyKiln {
	t.Helper()
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var b strings.Builder
	fmt.Fprintf(&b, "http:\n  addr: %q\nstorage:\n  filesystem:\n    root: ./data\nproxy:\n", addr)
	for _, u := range ups {
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n", u.Name, u.URL)
		if u.User != "" {
			fmt.Fprintf(&b, "    username: %q\n    password: %q\n", u.User, u.Pass)
		}
		for _, d := range []struct {
			key string
			v   time.Duration
		}{{"ttl", u.TTL}, {"timeout", u.Timeout}, {"watch_interval", u.Watch}} {
			if d.v > 0 {
				fmt.Fprintf(&b, "    %s: %s\n", d.key, d.v)
			}
		}
	}
	b.WriteString(extra)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := launchKiln(bin, "proxy", dir, "kiln.log", nil, addr, "--config", "config.yml")
	if err != nil {
		if srv != nil {
			srv.printTail(os.Stdout, 60)
		}
		t.Fatal(err)
	}
	k := &proxyKiln{srv: srv, addr: addr, dir: dir}
	t.Cleanup(func() {
		if err := srv.stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			srv.printTail(os.Stdout, 120)
		}
	})
	return k
}

// mirrorPair is kiln's usual proxy: section in these tests: the upstream as
// docker.io (so un-prefixed names reach it) and as up.local (prefix).
func mirrorPair(url string, up *upstreamRegistry, ttl, timeout time.Duration) []proxyUpstream {
	return []proxyUpstream{
		{Name: "docker.io", URL: url, User: up.user, Pass: up.pass, TTL: ttl, Timeout: timeout},
		{Name: "up.local", URL: url, User: up.user, Pass: up.pass, TTL: ttl, Timeout: timeout},
	}
}

func (k *proxyKiln) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(k.addr+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// pull fetches s (repo:tag or repo@digest) from kiln with ggcr, validates
// every blob, and returns the manifest digest.
func (k *proxyKiln) pull(t *testing.T, s string) string {
	t.Helper()
	d, err := pullValidate(k.ref(t, s))
	if err != nil {
		t.Fatalf("pulling %s through kiln: %v", s, err)
	}
	return d
}

func pullValidate(ref name.Reference, opts ...remote.Option) (string, error) {
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return "", err
	}
	if err := validate.Image(img); err != nil {
		return "", err
	}
	d, err := img.Digest()
	return d.String(), err
}

// manifestStatus GETs a manifest from kiln with a bounded client and
// returns the status, the digest header and how long it took.
func manifestStatus(t *testing.T, addr, repo, ref string, timeout time.Duration) (int, string, time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: timeout}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", acceptManifests)
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s/manifests/%s: %v after %s (want a prompt error status, not a hang)", repo, ref, err, time.Since(start).Round(time.Millisecond))
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Logf("GET %s/manifests/%s: %s %s", repo, ref, resp.Status, strings.TrimSpace(string(b)))
	}
	return resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), time.Since(start)
}

// ---------------------------------------------------------------- images

// ociImage is an OCI image of n random layers of size bytes each (so
// skopeo's oci: layout keeps it byte for byte).
func ociImage(t *testing.T, n int, size int64, seed int64) v1.Image {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for i := 0; i < n; i++ {
		l, err := random.Layer(size, types.OCILayer, random.WithSource(rand.NewSource(seed*1000+int64(i))))
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Env = []string{fmt.Sprintf("SEED=%d", seed)}
	img, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// blobDigests lists an image's config and layer digests.
func blobDigests(t *testing.T, img v1.Image) []string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{m.Config.Digest.String()}
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// busyboxImage is a docker image holding only a static /bin/busybox.
func busyboxImage(t *testing.T) v1.Image {
	t.Helper()
	rootfs := filepath.Join(t.TempDir(), "rootfs.tar")
	busyboxRootfsTar(t, staticBusybox(t), rootfs)
	layer, err := tarball.LayerFromFile(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Cmd = []string{"/bin/busybox", "sh"}
	cf.Config.Env = []string{"PATH=/bin"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// ---------------------------------------------------------------- docker

// startMirrorDockerd starts a private dockerd (the flags of
// shared/tools/start-dockerd.sh) with kiln as its registry mirror, a fresh
// data root and its own socket; it is stopped when the test ends.
func startMirrorDockerd(t *testing.T, mirror string) *dockerEnv {
	t.Helper()
	dockerd := ensureTool(t, "dockerd", "docker.io")
	ensureTool(t, "docker", "docker.io")
	// Short, so the socket path fits in sun_path.
	state, err := os.MkdirTemp("/tmp", "kiln-e2e-mirrord-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(state, "docker.sock")
	logf, err := os.Create(filepath.Join(state, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dockerd,
		"--host", "unix://"+sock,
		"--data-root", filepath.Join(state, "data"),
		"--exec-root", filepath.Join(state, "exec"),
		"--pidfile", filepath.Join(state, "dockerd.pid"),
		"--iptables=false", "--ip6tables=false", "--bridge=none",
		"--storage-driver=vfs",
		"--registry-mirror", mirror)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(state, "dockerd.log"))
			t.Logf("dockerd.log:\n%s", tail(string(b), 40))
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Logf("dockerd (pid %d) did not stop within 30s; killing it", cmd.Process.Pid)
			_ = cmd.Process.Kill()
			<-exited
		}
		stopDockerd(t, state) // removes the state directory
	})
	d := &dockerEnv{env: []string{"DOCKER_HOST=unix://" + sock, "DOCKER_CONFIG=" + filepath.Join(state, "client-config")}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := runCmd(t, cmdOpts{Env: d.env, Timeout: 10 * time.Second, Quiet: true}, "docker", "version", "--format", "{{.Server.Version}}")
		if r.Err == nil {
			break
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(state, "dockerd.log"))
			t.Fatalf("dockerd exited at start:\n%s", tail(string(b), 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("dockerd did not come up within 60s")
		}
		time.Sleep(500 * time.Millisecond)
	}
	return d
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
		time.Sleep(ttl + 200*time.Millisecond) // the tag is stale: kiln revalidates
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

// TestProxyUpstreamTagMoved: with ttl 1s, a tag moved upstream is served
// from the cache until the TTL passes, then kiln serves the new digest.
func TestProxyUpstreamTagMoved(t *testing.T) {
	needRegistry(t)
	up := startUpstreamRegistry(t, false)
	v1d := up.push(t, "team/app", "v1", ociImage(t, 1, 4096, 41))
	cp := startCountingProxy(t, up.addr)
	const ttl = time.Second
	k := startProxyKiln(t, mirrorPair(cp.URL, up, ttl, 5*time.Second), "")

	cachedAt := time.Now()
	if d := k.pull(t, "up.local/team/app:v1"); d != v1d {
		t.Fatalf("first pull: %s, want %s", d, v1d)
	}
	v2d := up.push(t, "team/app", "v1", ociImage(t, 1, 4096, 42))
	if v2d == v1d {
		t.Fatal("the two upstream images have the same digest")
	}
	if _, d, _ := manifestStatus(t, k.addr, "up.local/team/app", "v1", 30*time.Second); time.Since(cachedAt) < ttl/2 && d != v1d {
		t.Errorf("inside the TTL kiln answered %s, want the cached %s", d, v1d)
	}
	time.Sleep(ttl + 300*time.Millisecond)
	before := cp.snapshot()
	if d := k.pull(t, "up.local/team/app:v1"); d != v2d {
		t.Errorf("after the TTL kiln serves %s, want the moved tag's %s", d, v2d)
	}
	c := cp.snapshot().sub(before)
	t.Logf("upstream requests after the TTL: %+v", c)
	if c.ManifestHEAD+c.ManifestGET == 0 {
		t.Errorf("kiln did not ask the upstream after the TTL: %+v", c)
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
		deadline := time.Now().Add(30 * time.Second)
		var last string
		for time.Now().Before(deadline) {
			resp, body := doHTTP(t, http.MethodGet, "http://"+k.addr+"/v2/team/derived/manifests/v1", http.Header{"Accept": {acceptManifests}}, nil)
			if resp.StatusCode == http.StatusOK {
				var m manifestDoc
				if err := json.Unmarshal(body, &m); err == nil {
					last = m.Annotations["org.opencontainers.image.base.digest"]
					if last == want {
						return
					}
				}
			} else {
				last = resp.Status
			}
			time.Sleep(250 * time.Millisecond)
		}
		resp, body := doHTTP(t, http.MethodGet, "http://"+k.addr+"/kiln/v1/builds?limit=20", nil, nil)
		t.Fatalf("team/derived:v1 not built on %s within 30s (last: %s); builds: %s %s", want, last, resp.Status, body)
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

	// Polling is HEAD only while the tag stands still.
	before := cp.snapshot()
	time.Sleep(2500 * time.Millisecond)
	c := cp.snapshot().sub(before)
	t.Logf("upstream requests while idle: %+v", c)
	if c.ManifestHEAD == 0 || c.ManifestGET != 0 || c.BlobGET != 0 {
		t.Errorf("idle watch: upstream requests %+v, want manifest HEADs only", c)
	}
}

// ---------------------------------------------------------------- timings

// TestProxyPullTimings measures (and logs, not asserts) pulls of a ~20 MB,
// 5-layer image through kiln against pulls straight from the upstream,
// with kiln built both without and with the race detector.
func TestProxyPullTimings(t *testing.T) {
	needRegistry(t)
	plain, err := buildKilnPlain()
	if err != nil {
		t.Fatal(err)
	}
	raced, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	up := startUpstreamRegistry(t, false)
	const layers, layerSize, rounds = 5, 4 << 20, 3
	// One image per cold measurement: cold means kiln never saw it.
	seed := int64(700)
	pushImage := func(repo string) string {
		seed++
		up.push(t, repo, "v1", ociImage(t, layers, layerSize, seed))
		return repo + ":v1"
	}
	pull := func(ref string) (time.Duration, error) {
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		if err := pullBlobs(r); err != nil {
			return 0, fmt.Errorf("pull %s: %w", ref, err)
		}
		return time.Since(start), nil
	}
	once := func(ref string) time.Duration {
		t.Helper()
		d, err := pull(ref)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	concurrent := func(n int, ref string) time.Duration {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, n)
		start := time.Now()
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); _, errs[i] = pull(ref) }()
		}
		wg.Wait()
		took := time.Since(start)
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		return took
	}
	median := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

	for _, build := range []struct{ label, bin string }{{"kiln without -race", plain}, {"kiln with -race", raced}} {
		// Straight to the upstream: no counting proxy in the way.
		k := startProxyKilnBin(t, build.bin, []proxyUpstream{{Name: "up.local", URL: "http://" + up.addr, TTL: time.Hour, Timeout: 30 * time.Second}}, "")
		var direct, cold, warm, direct10, cold10 []time.Duration
		for range rounds {
			img := pushImage(fmt.Sprintf("bench/one-%d", seed))
			once(up.addr + "/" + img) // the upstream's page cache is warm for both
			direct = append(direct, once(up.addr+"/"+img))
			cold = append(cold, once(k.addr+"/up.local/"+img))
			warm = append(warm, once(k.addr+"/up.local/"+img))

			img = pushImage(fmt.Sprintf("bench/ten-%d", seed))
			once(up.addr + "/" + img)
			direct10 = append(direct10, concurrent(10, up.addr+"/"+img))
			cold10 = append(cold10, concurrent(10, k.addr+"/up.local/"+img))
		}
		d, c, w, d10, c10 := median(direct), median(cold), median(warm), median(direct10), median(cold10)
		t.Logf("%s, %d layers x %d MiB, median of %d: direct %s; through kiln cold %s (%.2fx direct), warm %s (%.2fx direct)",
			build.label, layers, layerSize>>20, rounds, ms(d), ms(c), ratio(c, d), ms(w), ratio(w, d))
		t.Logf("%s, 10 concurrent pulls: direct %s; through kiln cold %s (%.2fx direct)",
			build.label, ms(d10), ms(c10), ratio(c10, d10))
	}
}

// pullBlobs fetches ref's manifest and every blob (verified against its
// digest), as a client pulling an image does.
func pullBlobs(ref name.Reference) error {
	img, err := remote.Image(ref)
	if err != nil {
		return err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return err
	}
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed() // verifies the digest at EOF
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
