package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// builderCredMarker is how "kiln-builder:" starts in base64, as in a
// Basic Authorization value or an auth file: kiln's internal credential.
var builderCredMarker = base64.StdEncoding.EncodeToString([]byte("kiln-builder:"))[:16]

// TestSandboxEscape pushes a base whose /bin/sh is a static escape probe
// (testdata/sandbox-escape) to a kiln with authentication, and builds
// rules with a RUN line on it: with no Docker daemon, with buildah, auto
// and network: default; then with the docker builder. The probe tries a
// chroot breakout, reads /dev/shm and a host sentinel file, overwrites it,
// dials a loopback listener of the test, starts 400 threads and fills
// 512 MiB. None of that may reach the host: the sentinel stays, the
// listener hears nothing, the credential of kiln's builders is nowhere in
// the logs or images, and the logs show each attempt failing. buildah's
// sandbox also maps root to an unprivileged uid and holds buildhook.limits
// (300 processes, 256 MiB).
func TestSandboxEscape(t *testing.T) {
	needSetup(t)
	ensureTool(t, "buildah", "buildah")
	ensureTool(t, "runc", "runc")
	ensureTool(t, "newuidmap", "uidmap")
	htpasswd := ensureTool(t, "htpasswd", "apache2-utils")
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(t.TempDir(), "probe")
	mustRun(t, cmdOpts{Env: []string{"CGO_ENABLED=0"}, Timeout: 5 * time.Minute, Dir: moduleRoot},
		goBin(), "build", "-o", probe, "./e2e/testdata/sandbox-escape")
	hash := mustRun(t, cmdOpts{Stdin: strings.NewReader(escapePassword), Quiet: true}, htpasswd, "-Bin", escapeUser)

	t.Run("buildah", func(t *testing.T) {
		// No Docker daemon answers: auto has to fall back to buildah.
		noDocker := "DOCKER_HOST=unix://" + filepath.Join(t.TempDir(), "no-docker.sock")
		logs := runEscapeBuilds(t, bin, probe, hash, noDocker, `
  - name: escape-buildah
    context: ./app
    tags: [escape/buildah:v1]
    builder: buildah
  - name: escape-auto
    context: ./app
    tags: [escape/auto:v1]
  - name: escape-network
    context: ./app
    tags: [escape/network:v1]
    builder: buildah
    network: default
`, true)
		if !strings.Contains(logs["escape-auto"], "builder buildah: auto") {
			t.Errorf("escape-auto: the log does not say auto chose buildah and why:\n%s", tail(logs["escape-auto"], 20))
		}
	})
	t.Run("docker", func(t *testing.T) {
		// The operator's daemon: trusted, no user namespace unless it is
		// configured with one, but the build must not reach the host.
		docker := startDockerd(t)
		var host string
		for _, v := range docker.env {
			if strings.HasPrefix(v, "DOCKER_HOST=") {
				host = v
			}
		}
		runEscapeBuilds(t, bin, probe, hash, host, `
  - name: escape-docker
    context: ./app
    tags: [escape/docker:v1]
    builder: docker
`, false)
	})
}

const escapeUser, escapePassword = "alice", "e2e-Sandbox-pw-5521"

// runEscapeBuilds starts kiln with rules (YAML list items, context ./app)
// and the environment variable env, pushes the probe as escape/base:1,
// waits for every rule's build, checks what the probe got and returns the
// build logs by rule. sandboxed adds the checks of buildah's sandbox: an
// unprivileged root, a user namespace, buildhook.limits.
func runEscapeBuilds(t *testing.T, bin, probe, htpasswdLine, env, rules string, sandboxed bool) map[string]string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(htpasswdLine), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := filepath.Join(dir, "sentinel")
	const sentinelText = "the host's own file\n"
	if err := os.WriteFile(sentinel, []byte(sentinelText), 0o644); err != nil {
		t.Fatal(err)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	heard := make(chan string, 16)
	go func() {
		for {
			c, err := listener.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(io.LimitReader(c, 64))
			c.Close()
			heard <- fmt.Sprintf("%s sent %q", c.RemoteAddr(), b)
		}
	}()

	// kiln's address goes into the Dockerfile and the config before kiln
	// starts, so it is picked first (and again if another process takes
	// the port first).
	var srv *kilnServer
	addr := onFreePort(t, func(addr string) error {
		os.MkdirAll(filepath.Join(dir, "app"), 0o755)
		os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte(fmt.Sprintf(
			"FROM %s/escape/base:1\nRUN listen=%s sentinel=%s threads=400 alloc=536870912\n", addr, listener.Addr(), sentinel)), 0o644)
		cfg := fmt.Sprintf(`http:
  addr: %q
auth:
  htpasswd: ./htpasswd
storage:
  filesystem:
    root: ./data
buildhook:
  concurrency: 3
  limits:
    memory: 268435456
    pids: 300
builds:%s`, addr, rules)
		if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		var err error
		srv, err = startConfiguredKiln(t, bin, dir, "kiln.log", []string{env}, "http", &http.Client{Timeout: 10 * time.Second})
		return err
	})
	t.Cleanup(func() {
		if t.Failed() {
			srv.printTail(os.Stdout, 80)
		}
	})

	login := &authn.Basic{Username: escapeUser, Password: escapePassword}
	baseRef, _ := name.ParseReference(addr+"/escape/base:1", name.Insecure)
	if err := remote.Write(baseRef, probeBase(t, probe), remote.WithAuth(login)); err != nil {
		t.Fatal(err)
	}

	api := func(path string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.SetBasicAuth(escapeUser, escapePassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	var names []string
	for _, m := range regexp.MustCompile(`- name: (\S+)`).FindAllStringSubmatch(rules, -1) {
		names = append(names, m[1])
	}
	logs := map[string]string{}
	for _, rule := range names {
		var recs []buildRecord
		waitFor(t, 5*time.Minute, "the build of "+rule+" finishing", func() (bool, string) {
			code, body := api("/kiln/v1/builds?rule=" + rule)
			if code != 200 {
				t.Fatalf("GET /kiln/v1/builds: %d %s", code, body)
			}
			if err := json.Unmarshal(body, &recs); err != nil {
				t.Fatal(err)
			}
			return len(recs) > 0 && (recs[0].Status == "succeeded" || recs[0].Status == "failed"), fmt.Sprintf("%+v", recs)
		})
		_, log := api("/kiln/v1/builds/" + recs[0].ID + "/log")
		logs[rule] = string(log)
		t.Logf("%s: %s (%s)\n%s", rule, recs[0].Status, recs[0].Error, probeLines(string(log)))
		if recs[0].Status != "succeeded" {
			t.Errorf("%s: %s: %s\n%s", rule, recs[0].Status, recs[0].Error, tail(string(log), 40))
		}
	}

	if b, err := os.ReadFile(sentinel); err != nil || string(b) != sentinelText {
		t.Errorf("the host's sentinel file changed: %q %v", b, err)
	}
	// A connection the probe made is queued by now: drain the backlog.
	listener.(*net.TCPListener).SetDeadline(time.Now().Add(time.Second))
	if c, err := listener.Accept(); err == nil {
		heard <- fmt.Sprintf("%s (queued)", c.RemoteAddr())
		c.Close()
	}
	listener.Close()
	select {
	case h := <-heard:
		t.Errorf("a build reached the test's loopback listener: %s", h)
	default:
	}

	for _, rule := range names {
		log := logs[rule]
		if !strings.Contains(log, "probe: done") {
			t.Errorf("%s: the probe did not run to its end", rule)
			continue
		}
		if leaked := leakedCredential(log); leaked != "" {
			code, _ := apiWith(t, "http://"+addr+"/kiln/v1/rules", leaked)
			t.Errorf("%s: the build log holds kiln's builder credential (GET /kiln/v1/rules with it: %d)", rule, code)
		}
		if strings.Contains(log, "probe: sentinel write: ok") || !regexp.MustCompile(`probe: sentinel read: open \S+: no such file or directory`).MatchString(log) {
			t.Errorf("%s: the probe reached the host's sentinel file", rule)
		}
		if strings.Contains(log, "probe: connect "+listener.Addr().String()+": ok") {
			t.Errorf("%s: the probe connected to the host's loopback", rule)
		}
		namespaces := []string{"mnt", "pid", "ipc", "uts", "net"}
		if sandboxed {
			namespaces = append(namespaces, "user")
		}
		for _, ns := range namespaces {
			host, _ := os.Readlink("/proc/self/ns/" + ns)
			if strings.Contains(log, "probe: ns "+host+"\n") || !strings.Contains(log, "probe: ns "+ns+":") {
				t.Errorf("%s: the build does not have its own %s namespace (the host's is %s)", rule, ns, host)
			}
		}
		// The rules named *network* say network: default.
		interfaces := regexp.MustCompile(`probe: interfaces (\S*)`).FindStringSubmatch(log)
		switch {
		case interfaces == nil:
			t.Errorf("%s: the probe listed no interfaces", rule)
		case strings.Contains(rule, "network") && interfaces[1] == "lo":
			t.Errorf("%s: network: default, yet only a loopback interface", rule)
		case !strings.Contains(rule, "network") && interfaces[1] != "lo":
			t.Errorf("%s: network: none, yet interfaces %s", rule, interfaces[1])
		}
		if sandboxed {
			if m := regexp.MustCompile(`probe: uid_map (\S+) (\S+) (\S+)`).FindStringSubmatch(log); m == nil || m[2] == "0" {
				t.Errorf("%s: root in the build is the host's root: uid_map %q", rule, m)
			}
			if !strings.Contains(log, "probe: limit Max processes 300 300") {
				t.Errorf("%s: the build's process limit is not buildhook.limits.pids", rule)
			}
			if !strings.Contains(log, "probe: memory limit 268435456") {
				t.Errorf("%s: the build's memory limit is not buildhook.limits.memory", rule)
			}
			// Above the limits (300 processes, 256 MiB): refused or killed.
			for _, try := range []string{"threads 400", "alloc 536870912"} {
				if !strings.Contains(log, "probe: "+try+": ") || strings.Contains(log, "probe: "+try+": ok") {
					t.Errorf("%s: the probe's %s was not stopped by buildhook.limits", rule, try)
				}
			}
		}
		// What the probe wrote into the image: it must hold no credential.
		ref, _ := name.ParseReference(addr+"/escape/"+strings.TrimPrefix(rule, "escape-")+":v1", name.Insecure)
		img, err := remote.Image(ref, remote.WithAuth(login))
		if err != nil {
			t.Errorf("%s: %v", rule, err)
			continue
		}
		if got := imageFile(t, img, "probe.log"); !strings.Contains(got, "probe: done") {
			t.Errorf("%s: the image has no /probe.log of the probe", rule)
		} else if leakedCredential(got) != "" {
			t.Errorf("%s: the built image holds kiln's builder credential", rule)
		}
	}
	checkNoSecret(t, srv, escapeUser, escapePassword)
	if b, _ := os.ReadFile(srv.stderr); strings.Contains(string(b), builderCredMarker) {
		t.Error("kiln's log holds the builder credential")
	}
	return logs
}

// probeBase is an image whose /bin/sh is the escape probe.
func probeBase(t *testing.T, probe string) v1.Image {
	t.Helper()
	b, err := os.ReadFile(probe)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "bin/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Unix(0, 0)})
	tw.WriteHeader(&tar.Header{Name: "bin/sh", Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
	tw.Write(b)
	tw.Close()
	layer, err := tarball.LayerFromReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/bin"}
	cf.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// imageFile returns the content of file in img's layers (the last wins).
func imageFile(t *testing.T, img v1.Image, file string) string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	found := ""
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimPrefix(h.Name, "./") == file {
				b, _ := io.ReadAll(tr)
				found = string(b)
			}
		}
		rc.Close()
	}
	return found
}

// leakedCredential returns the Basic value of kiln's builder credential if
// s holds one, else "".
func leakedCredential(s string) string {
	m := regexp.MustCompile(builderCredMarker + `[A-Za-z0-9+/=]*`).FindString(s)
	return m
}

// apiWith GETs url with a Basic Authorization value.
func apiWith(t *testing.T, url, basic string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Basic "+basic)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// probeLines keeps the probe's own lines of a build log.
func probeLines(log string) string {
	var keep []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "probe: ") || strings.Contains(l, "builder ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
