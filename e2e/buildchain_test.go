package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// buildRecord is what /kiln/v1/builds lists.
type buildRecord struct {
	ID, Rule, Status, Builder, Error, Result, Reason string
	Instance                                         string     `json:"instance"`
	TriggerDigest                                    string     `json:"triggerDigest"`
	Started                                          *time.Time `json:"started"`
	Finished                                         *time.Time `json:"finished"`
}

// buildKilnEnv is a kiln started with build rules for the example chain,
// and the dockerd its docker builder uses.
type buildKilnEnv struct {
	srv    *kilnServer
	addr   string
	docker *dockerEnv
	dir    string
	env    []string // kiln's extra environment
	starts int
}

// startBuildKiln copies examples/ (what git tracks of it) into a temporary directory, writes a
// config with the chain's rules (every builder and the rebase strategy),
// and starts kiln on it with DOCKER_HOST set.
func startBuildKiln(t *testing.T) *buildKilnEnv {
	t.Helper()
	busybox := staticBusybox(t)
	ensureTool(t, "buildah", "buildah")
	docker := startDockerd(t)
	dir := t.TempDir()
	copyTracked(t, filepath.Join(moduleRoot, "examples"), dir)
	b, _ := os.ReadFile(busybox)
	os.WriteFile(filepath.Join(dir, "python-base", "busybox"), b, 0o755)
	// A RUN-less copy of flask-app for the native builder and the rebase
	// strategy.
	os.MkdirAll(filepath.Join(dir, "flask-native"), 0o755)
	os.WriteFile(filepath.Join(dir, "flask-native", "app.py"), []byte("print('native')\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "flask-native", "Dockerfile"), []byte(
		"ARG REGISTRY\nFROM ${REGISTRY}/python:3.8\nENV APP=native\nWORKDIR /app\nCOPY app.py /app/app.py\nCMD [\"/bin/busybox\", \"cat\", \"/etc/python-version\"]\n"), 0o644)
	// kiln's address goes into the rules' build args before kiln starts,
	// so it is picked first (and again if another process takes the port
	// first); restarts keep it.
	writeConfig := func(addr string) {
		cfg := fmt.Sprintf(`http:
  addr: %q
storage:
  filesystem:
    root: ./data
buildhook:
  concurrency: 2
  work_dir: ./work
builds:
  - name: flask-app
    context: ./flask-app
    tags: [flask-app:v1.0]
    args: {REGISTRY: %q, APP_ENV: dev}
    builder: docker
  - name: flask-app-tests
    context: ./flask-app-tests
    tags: [flask-app-tests:v1.0]
    args: {REGISTRY: %q}
  - name: flask-buildah
    context: ./flask-app
    tags: [flask-buildah:v1.0]
    args: {REGISTRY: %q}
    builder: buildah
  - name: flask-native
    context: ./flask-native
    tags: [flask-native:v1.0]
    args: {REGISTRY: %q}
    builder: native
  - name: flask-rebase
    context: ./flask-native
    tags: [flask-rebase:v1.0]
    args: {REGISTRY: %q}
    strategy: rebase
`, addr, addr, addr, addr, addr, addr)
		if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Only DOCKER_HOST: the test client's DOCKER_CONFIG has no config.json,
	// which buildah would refuse as an auth file.
	var env []string
	for _, v := range docker.env {
		if strings.HasPrefix(v, "DOCKER_HOST=") {
			env = append(env, v)
		}
	}
	e := &buildKilnEnv{docker: docker, dir: dir, env: env}
	onFreePort(t, func(addr string) error {
		writeConfig(addr)
		e.addr = addr
		return e.start(t)
	})
	t.Cleanup(func() {
		if err := e.srv.stop(); err != nil {
			t.Error(err)
		}
		if dirs := e.workDirs(t); len(dirs) != 0 {
			t.Errorf("kiln stopped, yet working directories remain: %v", dirs)
		}
		if t.Failed() {
			e.srv.printTail(os.Stdout, 120)
		}
	})
	return e
}

// launch starts kiln on the environment's directory, address and config.
func (e *buildKilnEnv) launch(t *testing.T) {
	t.Helper()
	if err := e.start(t); err != nil {
		t.Fatal(err)
	}
}

// start is launch returning the error, which wraps errPortTaken when
// another process holds the address.
func (e *buildKilnEnv) start(t *testing.T) error {
	t.Helper()
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	e.starts++
	srv, err := launchKiln(bin, "build", e.dir, fmt.Sprintf("kiln-%d.log", e.starts), e.env, e.addr, "--config", "config.yml")
	if err != nil {
		return err
	}
	e.srv = srv
	return nil
}

// builds lists the build records, newest first.
func (e *buildKilnEnv) builds(t *testing.T) []buildRecord {
	t.Helper()
	resp, body := doHTTP(t, "GET", "http://"+e.addr+"/kiln/v1/builds?limit=1000", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /kiln/v1/builds: %s %s", resp.Status, body)
	}
	var recs []buildRecord
	if err := json.Unmarshal(body, &recs); err != nil {
		t.Fatal(err)
	}
	return recs
}

// waitBuilds waits until there are at least n builds and none is queued or
// running, and returns them. It gives up when nothing changed for 20s.
func (e *buildKilnEnv) waitBuilds(t *testing.T, n int) []buildRecord {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	lastChange, lastCount := time.Now(), -1
	for {
		recs := e.builds(t)
		busy := 0
		for _, r := range recs {
			if r.Status == "queued" || r.Status == "running" {
				busy++
			}
		}
		if len(recs) >= n && busy == 0 {
			return recs
		}
		if len(recs) != lastCount || busy > 0 {
			lastChange, lastCount = time.Now(), len(recs)
		}
		if time.Now().After(deadline) || time.Since(lastChange) > 20*time.Second {
			for _, r := range recs {
				if r.Status == "failed" {
					_, log := doHTTP(t, "GET", "http://"+e.addr+"/kiln/v1/builds/"+r.ID+"/log", nil, nil)
					t.Logf("failed build %s of %s:\n%s", r.ID, r.Rule, tail(string(log), 150))
				}
			}
			t.Fatalf("waiting for %d builds: have %d, %d busy: %+v", n, len(recs), busy, recs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// baseImage builds a python:3.8 stand-in: a busybox layer (the same for
// every version) and a small layer with /etc/python-version.
func baseImage(t *testing.T, version string) v1.Image {
	t.Helper()
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	layer := func(files map[string][]byte) v1.Layer {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, dir := range []string{"bin/", "etc/"} {
			tw.WriteHeader(&tar.Header{Name: dir, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Unix(0, 0)})
		}
		for _, name := range []string{"bin/busybox", "bin/sh", "etc/python-version"} {
			if content, ok := files[name]; ok {
				tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
				tw.Write(content)
			}
		}
		tw.Close()
		l, err := tarball.LayerFromReader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	img, err := mutate.AppendLayers(empty.Image,
		layer(map[string][]byte{"bin/busybox": busybox, "bin/sh": busybox}),
		layer(map[string][]byte{"etc/python-version": []byte(version + "\n")}))
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/bin", "PYTHON_VERSION=" + version}
	cf.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pushBase pushes a python:3.8 stand-in of version and returns its digest.
func (e *buildKilnEnv) pushBase(t *testing.T, version string) string {
	t.Helper()
	img := baseImage(t, version)
	ref, _ := name.ParseReference(e.addr+"/python:3.8", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

// pushBaseBurst uploads one base per version by digest, then moves the
// tag through them back to back: a burst of tag pushes, a few ms apart.
func (e *buildKilnEnv) pushBaseBurst(t *testing.T, versions ...string) string {
	t.Helper()
	var imgs []v1.Image
	for _, v := range versions {
		img := baseImage(t, v)
		d, _ := img.Digest()
		byDigest, _ := name.ParseReference(e.addr+"/python@"+d.String(), name.Insecure)
		if err := remote.Write(byDigest, img); err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	tag, _ := name.NewTag(e.addr+"/python:3.8", name.Insecure)
	for _, img := range imgs {
		if err := remote.Tag(tag, img); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := imgs[len(imgs)-1].Digest()
	return d.String()
}

func (e *buildKilnEnv) manifestAnnotations(t *testing.T, repoTag string) map[string]string {
	t.Helper()
	ref, _ := name.ParseReference(e.addr+"/"+repoTag, name.Insecure)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("%s: %v", repoTag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Annotations
}

func (e *buildKilnEnv) configOf(t *testing.T, repoTag string) *v1.ConfigFile {
	t.Helper()
	ref, _ := name.ParseReference(e.addr+"/"+repoTag, name.Insecure)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("%s: %v", repoTag, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

// TestBuildOnPush: a base pushed with docker builds the whole chain with
// every builder; a new base rebuilds it, each rule once and in order; a
// burst of pushes coalesces.
func TestBuildOnPush(t *testing.T) {
	needRegistry(t)
	e := startBuildKiln(t)
	const rules = 5

	// First base: built and pushed by docker, as a user would.
	os.WriteFile(filepath.Join(e.dir, "python-base", "version"), []byte("3.8.1\n"), 0o644)
	baseRef := e.addr + "/python:3.8"
	e.docker.must(t, "build", "--build-arg", "BASE_VERSION=3.8.1", "-t", baseRef, filepath.Join(e.dir, "python-base"))
	out := e.docker.must(t, "push", baseRef)
	m := pushDigestRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("docker push printed no digest:\n%s", out)
	}
	base1 := m[1]
	recs := e.waitBuilds(t, rules)
	checkRound(t, e, recs, rules, base1, "3.8.1")

	// A patched base: every rule rebuilds once, flask-app-tests after flask-app.
	base2 := e.pushBase(t, "3.8.2")
	answered := time.Now()
	recs = e.waitBuilds(t, 2*rules)
	checkRound(t, e, recs, 2*rules, base2, "3.8.2")
	logLatencies(t, e, recs[:rules], answered)
	// buildah pulled the first base, then the second: the first is pruned.
	base2Config, _ := baseImage(t, "3.8.2").ConfigName()
	e.checkBuildahStorage(t, base2Config.String())
	rebase := e.configOf(t, "flask-rebase:v1.0")
	if !containsString(rebase.Config.Env, "PYTHON_VERSION=3.8.2") || !containsString(rebase.Config.Env, "APP=native") {
		t.Errorf("rebased image's Env %v: want the new base's PYTHON_VERSION and its own APP", rebase.Config.Env)
	}
	for _, r := range recs[:rules] {
		if r.Rule == "flask-rebase" && r.Builder != "rebase" {
			t.Errorf("second build of flask-rebase used %q, want rebase", r.Builder)
		}
	}

	// The new image runs and shows the new base's content.
	e.docker.must(t, "pull", e.addr+"/flask-app-tests:v1.0")
	run := e.docker.must(t, "run", "--rm", "--network", "none", e.addr+"/flask-app-tests:v1.0")
	if !strings.Contains(run, "built on python 3.8.2") {
		t.Errorf("flask-app-tests printed %q, want the new base's version", run)
	}

	// Five rapid pushes: each rule builds at most twice more.
	before := len(e.builds(t))
	last := e.pushBaseBurst(t, "3.8.3", "3.8.4", "3.8.5", "3.8.6", "3.8.7")
	recs = e.waitBuilds(t, before+rules)
	perRule := map[string]int{}
	for _, r := range recs[:len(recs)-before] {
		perRule[r.Rule]++
	}
	for rule, n := range perRule {
		if n > 2 {
			t.Errorf("rule %s built %d times for five rapid base pushes, want at most 2", rule, n)
		}
	}
	if got := e.manifestAnnotations(t, "flask-app:v1.0")["org.opencontainers.image.base.digest"]; got != last {
		t.Errorf("after the burst flask-app is built on %s, want the last base %s", got, last)
	}
}

// checkRound checks the newest `rules` records (of total) all succeeded and
// that every image now says it is built on base.
func checkRound(t *testing.T, e *buildKilnEnv, recs []buildRecord, total int, base, version string) {
	t.Helper()
	const rules = 5
	if len(recs) != total {
		t.Fatalf("%d builds, want %d: %+v", len(recs), total, recs)
	}
	var order []string
	for i := rules - 1; i >= 0; i-- {
		r := recs[i]
		order = append(order, r.Rule)
		if r.Status != "succeeded" {
			resp, log := doHTTP(t, "GET", "http://"+e.addr+"/kiln/v1/builds/"+r.ID+"/log", nil, nil)
			t.Errorf("build %s of %s: %s %s (log %s):\n%s", r.ID, r.Rule, r.Status, r.Error, resp.Status, tail(string(log), 40))
		}
	}
	if idx(order, "flask-app-tests") < idx(order, "flask-app") {
		t.Errorf("build order %v: flask-app-tests before flask-app", order)
	}
	for _, tag := range []string{"flask-app:v1.0", "flask-buildah:v1.0", "flask-native:v1.0", "flask-rebase:v1.0"} {
		ann := e.manifestAnnotations(t, tag)
		if ann["org.opencontainers.image.base.digest"] != base {
			t.Errorf("%s: base.digest %q, want %s (python %s)", tag, ann["org.opencontainers.image.base.digest"], base, version)
		}
		if !strings.HasSuffix(ann["org.opencontainers.image.base.name"], "/python:3.8") || ann["dev.kiln.build.inputs"] == "" {
			t.Errorf("%s: provenance annotations %v", tag, ann)
		}
	}
}

func idx(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func containsString(list []string, s string) bool { return idx(list, s) >= 0 }

// TestBuildSurvivesSIGKILL kills kiln with SIGKILL while a docker build
// runs; after a restart the build runs again and completes.
func TestBuildSurvivesSIGKILL(t *testing.T) {
	needRegistry(t)
	e := startBuildKiln(t)
	base := e.pushBase(t, "3.9.1")
	var running string
	deadline := time.Now().Add(2 * time.Minute)
	for running == "" {
		for _, r := range e.builds(t) {
			if r.Rule == "flask-app" && r.Status == "running" {
				running = r.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("flask-app never ran: %+v", e.builds(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.srv.kill()
	t.Logf("killed kiln with SIGKILL while build %s ran", running)
	dead := e.workDirs(t)
	e.launch(t)
	if len(dead) != 1 {
		t.Errorf("the killed kiln left working directories %v, want its one", dead)
	} else if got := e.workDirs(t); len(got) != 1 || got[0] == dead[0] {
		t.Errorf("after a restart the working directories are %v; the dead kiln's %s must be gone", got, dead[0])
	}

	recs := e.waitBuilds(t, 6)
	var resumed *buildRecord
	for i, r := range recs {
		if r.ID == running && (r.Status != "failed" || !strings.Contains(r.Error, "run again as build")) {
			t.Errorf("interrupted build %s: %s %q", r.ID, r.Status, r.Error)
		}
		if r.Rule == "flask-app" && r.ID != running && r.Status == "succeeded" {
			resumed = &recs[i]
		}
	}
	if resumed == nil {
		t.Fatalf("no flask-app build completed after the restart: %+v", recs)
	}
	if got := e.manifestAnnotations(t, "flask-app:v1.0")["org.opencontainers.image.base.digest"]; got != base {
		t.Errorf("flask-app built on %s after the restart, want %s", got, base)
	}
}

// logLatencies logs, for each rule's build, the time from the base push's
// answer to the derived tag moving, next to what the same build takes when
// run by hand (docker build + push, buildah bud + push): the builders'
// overhead. A measurement, not an assertion.
func logLatencies(t *testing.T, e *buildKilnEnv, recs []buildRecord, answered time.Time) {
	t.Helper()
	for _, r := range recs {
		if r.Finished != nil {
			t.Logf("latency %-16s %-8s base PUT answer -> tag moved: %v", r.Rule, r.Builder, r.Finished.Sub(answered).Round(time.Millisecond))
		}
	}
	ctx := filepath.Join(e.dir, "flask-app")
	byHand := e.addr + "/by-hand/flask-app:v1"
	start := time.Now()
	e.docker.must(t, "build", "--pull", "--build-arg", "REGISTRY="+e.addr, "-t", byHand, ctx)
	e.docker.must(t, "push", byHand)
	t.Logf("latency by hand: docker build --pull + push: %v", time.Since(start).Round(time.Millisecond))
	root := t.TempDir()
	buildah := func(args ...string) {
		mustRun(t, cmdOpts{Timeout: 5 * time.Minute}, "buildah", append([]string{"--root", root + "/root", "--runroot", root + "/run", "--storage-driver", "vfs"}, args...)...)
	}
	start = time.Now()
	buildah("bud", "--isolation", "chroot", "--pull=always", "--tls-verify=false", "--build-arg", "REGISTRY="+e.addr, "-t", byHand, ctx)
	buildah("push", "--tls-verify=false", byHand, "docker://"+byHand)
	t.Logf("latency by hand: buildah bud + push: %v", time.Since(start).Round(time.Millisecond))
}
