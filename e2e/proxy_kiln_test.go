package e2e

import (
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

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
	var b strings.Builder
	b.WriteString("storage:\n  filesystem:\n    root: ./data\nproxy:\n")
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
	srv, err := launchKiln(bin, "proxy", dir, "kiln.log", nil, "", "--config", "config.yml")
	if err != nil {
		if srv != nil {
			srv.printTail(os.Stdout, 60)
		}
		t.Fatal(err)
	}
	k := &proxyKiln{srv: srv, addr: srv.env.Addr, dir: dir}
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
