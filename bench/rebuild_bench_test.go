package bench

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// BenchmarkRebuildLatency measures build-on-push latency from outside the
// process, as a user sees it: it builds and starts the real kiln binary
// (filesystem store in a temporary directory) with two rules on one base,
// base:1 — one built by the native builder, one rebased — then, per
// iteration, pushes a new base:1 over HTTP and polls both derived tags
// with HEAD every pollEvery until each points at a new image. It reports,
// as medians over the iterations, the milliseconds from the answer to the
// base's manifest PUT until each derived tag moved (native-ms, rebase-ms);
// ns/op is the time until both had.
//
//	go test -run '^$' -bench RebuildLatency -benchtime 20x ./bench/
//
// KILN_BIN=/path/to/kiln measures that binary instead of building one.
// Issue 17's targets: native-ms ≤ 40 and rebase-ms ≤ 30.
func BenchmarkRebuildLatency(b *testing.B) {
	dir := b.TempDir()
	bin := buildKilnBinary(b, dir)
	writeRebuildConfig(b, dir)
	addr, stop := startKiln(b, bin, dir)
	defer stop()

	// A 1 MB base in three layers (as in buildhook's in-process benchmark),
	// plus a small layer that changes with every push.
	base, err := random.Image(350_000, 3)
	if err != nil {
		b.Fatal(err)
	}
	baseRef, err := name.NewTag(addr+"/base:1", name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	answered := &putClock{}
	pushOpts := []remote.Option{remote.WithTransport(answered)}
	push := func() time.Time {
		layer, err := random.Layer(1024, "application/vnd.docker.image.rootfs.diff.tar.gzip")
		if err != nil {
			b.Fatal(err)
		}
		img, err := mutate.AppendLayers(base, layer)
		if err != nil {
			b.Fatal(err)
		}
		if err := remote.Write(baseRef, img, pushOpts...); err != nil {
			b.Fatal(err)
		}
		return answered.last()
	}
	derived := []string{"app-native", "app-rebase"}
	current := make([]string, len(derived))
	wait := func(since time.Time) []time.Duration {
		took := make([]time.Duration, len(derived))
		var wg sync.WaitGroup
		for i, repo := range derived {
			wg.Go(func() {
				d, at := pollMove(b, addr, repo, current[i])
				current[i], took[i] = d, at.Sub(since)
			})
		}
		wg.Wait()
		return took
	}

	// The first builds: rebase has no image to rebase yet.
	wait(push())
	var native, rebase []time.Duration
	for b.Loop() {
		b.StopTimer()
		put := push()
		b.StartTimer()
		took := wait(put)
		native, rebase = append(native, took[0]), append(rebase, took[1])
	}
	ms := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(native), "native-ms")
	b.ReportMetric(ms(rebase), "rebase-ms")
}

// pollEvery is how often the derived tags are asked for: the granularity
// of the figures.
const pollEvery = time.Millisecond

// pollMove HEADs repo:v1 until its digest is neither "" nor from, and
// returns it and when it was first seen.
func pollMove(b *testing.B, addr, repo, from string) (string, time.Time) {
	url := "http://" + addr + "/v2/" + repo + "/manifests/v1"
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodHead, url, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if d := resp.Header.Get("Docker-Content-Digest"); resp.StatusCode == http.StatusOK && d != "" && d != from {
				return d, time.Now()
			}
		}
		time.Sleep(pollEvery)
	}
	b.Fatalf("%s:v1 did not move within a minute", repo)
	return "", time.Time{}
}

// putClock is a transport that notes when the last manifest PUT was
// answered.
type putClock struct {
	mu sync.Mutex
	at time.Time
}

func (c *putClock) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
		c.mu.Lock()
		c.at = time.Now()
		c.mu.Unlock()
	}
	return resp, err
}

func (c *putClock) last() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

// buildKilnBinary builds ./cmd/kiln (without the race detector: this
// measures it) into dir; $KILN_BIN names a binary to measure instead.
func buildKilnBinary(b *testing.B, dir string) string {
	b.Helper()
	if bin := os.Getenv("KILN_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(dir, "kiln")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kiln")
	cmd.Dir = ".." // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/kiln: %v\n%s", err, out)
	}
	return bin
}

// writeRebuildConfig writes dir/config.yml with the two rules on base:1
// and their build context.
func writeRebuildConfig(b *testing.B, dir string) {
	b.Helper()
	ctxDir := filepath.Join(dir, "app")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		b.Fatal(err)
	}
	files := map[string]string{
		filepath.Join(ctxDir, "Dockerfile"): "FROM kiln.bench/base:1\nENV APP=1\nCOPY app.py /app/app.py\nCMD [\"/app/app.py\"]\n",
		filepath.Join(ctxDir, "app.py"):     "print('hi')\n",
		filepath.Join(dir, "config.yml"): `version: 1
storage:
  filesystem:
    root: ./data
log:
  level: warn
  requests: none
registry:
  hostnames: [kiln.bench]
buildhook:
  work_dir: ./work
builds:
  - name: native
    context: ./app
    tags: [app-native:v1]
    builder: native
  - name: rebase
    context: ./app
    tags: [app-rebase:v1]
    builder: native
    strategy: rebase
`,
	}
	for p, content := range files {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// startKiln runs `kiln serve` in dir on a free loopback port until stop
// is called, and returns the address once it answers /v2/. kiln binds
// port 0 and names the port in its --ready-file; the rules name kiln by
// the hostname kiln.bench, which it maps to itself.
func startKiln(b *testing.B, bin, dir string) (addr string, stop func()) {
	b.Helper()
	logFile, err := os.Create(filepath.Join(dir, "kiln.log"))
	if err != nil {
		b.Fatal(err)
	}
	ready := filepath.Join(dir, "kiln.addr")
	cmd := exec.Command(bin, "serve", "--config", filepath.Join(dir, "config.yml"), "--addr", "127.0.0.1:0", "--ready-file", ready)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logFile.Close(); close(exited) }()
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if b, err := os.ReadFile(ready); err == nil && addr == "" {
			addr = strings.TrimSpace(string(b))
		}
		if addr != "" {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return addr, stop
				}
			}
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "kiln.log"))
			b.Fatalf("kiln exited:\n%s", log)
		case <-ctx.Done():
			stop()
			b.Fatal("kiln did not answer /v2/ within a minute")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
