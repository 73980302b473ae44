package e2e

// End-to-end tests of kiln's pull-through cache (package proxy) with real
// clients: a Docker daemon using kiln as its registry mirror, skopeo and
// go-containerregistry, against an upstream that is Debian's docker-registry
// (CNCF Distribution 2.8) on loopback. A counting reverse proxy between kiln
// and the upstream tells how many requests of each kind kiln sent.

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
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
	u := &upstreamRegistry{done: make(chan struct{}), log: filepath.Join(dir, "registry.log")}
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
	// docker-registry does not report the port it got for port 0.
	u.addr = onFreePort(t, func(addr string) error {
		u.addr = addr
		return u.start(t, bin, dir, auth)
	})
	t.Cleanup(func() {
		u.stop()
		if t.Failed() {
			b, _ := os.ReadFile(u.log)
			t.Logf("docker-registry log:\n%s", tail(string(b), 30))
		}
	})
	return u
}

// start runs docker-registry on u.addr and waits until it answers; the
// error wraps errPortTaken when it could not bind u.addr.
func (u *upstreamRegistry) start(t *testing.T, bin, dir, auth string) error {
	t.Helper()
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
	u.done = make(chan struct{})
	u.cmd = exec.Command(bin, "serve", cfgPath)
	u.cmd.Stdout, u.cmd.Stderr = logf, logf
	u.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := u.cmd.Start(); err != nil {
		t.Fatalf("start docker-registry: %v", err)
	}
	done := u.done
	go func() { u.cmd.Wait(); logf.Close(); close(done) }()
	// /v2/ answers 401 when auth is on: wait for any HTTP answer.
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.After(30 * time.Second)
	for {
		resp, err := client.Get("http://" + u.addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-done:
			b, _ := os.ReadFile(u.log)
			return portTaken(u.log, fmt.Errorf("docker-registry exited at start:\n%s", tail(string(b), 30)))
		case <-deadline:
			u.stop()
			return fmt.Errorf("docker-registry did not answer on %s: %v", u.addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
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
