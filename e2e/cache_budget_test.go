package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// cacheStatus is what GET /kiln/v1/cache answers.
type cacheStatus struct {
	Images int
	Bytes  int64
	Shared int64
	Budget int64
}

// TestCacheStaysWithinBudget runs kiln on a 48 MiB tmpfs with a 12 MiB
// cache budget and pulls ten 3 MiB mirrored images (30 MiB) through it
// while pushes and native builds go on. After each pull the eviction that
// follows the fills brings the cache back within its budget (the scheduled
// check is a minute away), it ends within it,
// no push ever meets a full disk, every pushed and built image verifies,
// and an evicted image pulls again from the upstream. fsck finds nothing.
func TestCacheStaysWithinBudget(t *testing.T) {
	needSetup(t)
	if os.Geteuid() != 0 {
		if isCI() {
			t.Fatal("mounting a small tmpfs needs root, and CI runs as root")
		}
		t.Skip("mounting a small tmpfs needs root")
	}
	up := startUpstreamRegistry(t, false)
	counter := startCountingProxy(t, up.addr)
	const images, budget = 10, 12 << 20
	var mirrored []string
	for i := range images {
		mirrored = append(mirrored, up.push(t, fmt.Sprintf("lib/img%d", i), "1", ociImage(t, 1, 3<<20, int64(100+i))))
	}

	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m", "kiln-cache", data).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", data, err, out)
		}
	})
	os.MkdirAll(filepath.Join(dir, "app"), 0o755)
	os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte("ARG REGISTRY\nFROM ${REGISTRY}/team/base:1\nCOPY app.txt /app.txt\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app", "app.txt"), []byte("app"), 0o644)

	var srv *kilnServer
	var addr string
	onFreePort(t, func(a string) error {
		addr = a
		cfg := fmt.Sprintf(`http:
  addr: %q
storage:
  filesystem:
    root: ./data
  gc:
    grace: 1s
proxy:
  - name: up.local
    url: %s
cache:
  max_size: %d
  check_interval: 1m
  min_free: 8MiB
buildhook:
  work_dir: ./work
builds:
  - name: app
    context: ./app
    tags: [team/app:v1]
    args: {REGISTRY: %q}
    builder: native
`, a, counter.URL, budget, a)
		if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		var err error
		srv, err = launchKiln(bin, "cache", dir, "kiln.log", nil, a, "--config", "config.yml")
		return err
	})
	t.Cleanup(func() {
		if t.Failed() {
			srv.printTail(os.Stdout, 80)
		}
		srv.kill()
	})
	status := func() cacheStatus {
		t.Helper()
		resp, body := doHTTP(t, "GET", "http://"+addr+"/kiln/v1/cache", nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /kiln/v1/cache: %s %s", resp.Status, body)
		}
		var st cacheStatus
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	ref := func(s string) name.Reference {
		r, err := name.ParseReference(addr+"/"+s, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// Pushes and builds go on while the cache fills: a base moved three
	// times (each a native build) and five 1 MiB images.
	var wg sync.WaitGroup
	pushErrs := make(chan error, 16)
	wg.Go(func() {
		for i := range 3 {
			if err := remote.Write(ref("team/base:1"), ociImage(t, 1, 1<<20, int64(200+i))); err != nil {
				pushErrs <- fmt.Errorf("base %d: %w", i, err)
			}
		}
		for i := range 5 {
			if err := remote.Write(ref(fmt.Sprintf("team/push%d:1", i)), ociImage(t, 1, 1<<20, int64(300+i))); err != nil {
				pushErrs <- fmt.Errorf("push %d: %w", i, err)
			}
		}
	})
	peak := int64(0)
	for i := range images {
		if d, err := pullValidate(ref(fmt.Sprintf("up.local/lib/img%d:1", i))); err != nil || d != mirrored[i] {
			t.Fatalf("pulling mirrored image %d: %s %v", i, d, err)
		}
		peak = max(peak, status().Bytes)
		// The fills that took the cache over its budget are followed by an
		// eviction, not by the next check a minute later: wait for it, for
		// less than that minute.
		waitFor(t, 30*time.Second, fmt.Sprintf("the cache back within its budget after pull %d", i), func() (bool, string) {
			st := status()
			return st.Bytes <= budget, fmt.Sprintf("%+v", st)
		})
	}
	wg.Wait()
	close(pushErrs)
	for err := range pushErrs {
		t.Errorf("a push during the pulls failed: %v", err)
	}

	// One more run now makes the end state certain (the pushes and builds
	// went on meanwhile), then the cache is within its budget.
	resp, body := doHTTP(t, "POST", "http://"+addr+"/kiln/v1/cache", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /kiln/v1/cache: %s %s", resp.Status, body)
	}
	end := status()
	t.Logf("cache: budget %d, peak seen %d, end %d bytes in %d images (%d shared)", budget, peak, end.Bytes, end.Images, end.Shared)
	if end.Bytes > budget || end.Budget != budget || end.Images == 0 || end.Images >= images {
		t.Errorf("cache at the end: %+v, want within %d bytes and some images evicted", end, budget)
	}

	// Built and pushed images verify; the build ran on the last base.
	waitFor(t, 3*time.Minute, "the app build on the last base", func() (bool, string) {
		resp, body := doHTTP(t, "GET", "http://"+addr+"/kiln/v1/builds?rule=app&limit=1", nil, nil)
		var recs []buildRecord
		json.Unmarshal(body, &recs)
		return resp.StatusCode == 200 && len(recs) == 1 && (recs[0].Status == "succeeded" || recs[0].Status == "unchanged") && len(body) > 0, string(body)
	})
	for _, s := range []string{"team/app:v1", "team/base:1", "team/push0:1", "team/push4:1"} {
		if _, err := pullValidate(ref(s)); err != nil {
			t.Errorf("%s after the evictions: %v", s, err)
		}
	}

	// The least recently pulled image was evicted: it comes back from
	// the upstream, whole.
	before := counter.snapshot()
	if d, err := pullValidate(ref("up.local/lib/img0:1")); err != nil || d != mirrored[0] {
		t.Fatalf("pulling the evicted image again: %s %v", d, err)
	}
	if got := counter.snapshot().sub(before); got.BlobGET == 0 {
		t.Errorf("the evicted image was served without fetching its blobs again: %+v", got)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	crashFsck(t, bin, dir, data, "after the evictions")
}
