// Package e2e runs real registry clients (the OCI conformance suite, docker,
// skopeo, buildah, podman, go-containerregistry, oras-go) against a real
// running registry.
//
// By default TestMain builds ./cmd/kiln with -race, starts
// `kiln serve --addr 127.0.0.1:PORT --data DIR` and stops it with SIGTERM at
// the end. Environment knobs:
//
//	KILN_E2E_REGISTRY=host:port  test that registry instead (no kiln is started)
//	KILN_E2E=0                   skip the e2e tests (ignored when CI=true)
//
// Missing tools are installed with apt-get when running as root; otherwise
// the test that needs them fails.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// registryEnv describes the registry under test.
type registryEnv struct {
	Addr  string // host:port
	URL   string // http://host:port
	Kiln  bool   // true when TestMain started kiln itself
	RunID string // unique per test run, safe inside repository names
}

// Repo returns a repository name unique to this test run.
func (r *registryEnv) Repo(parts ...string) string {
	return "e2e/" + r.RunID + "/" + strings.Join(parts, "/")
}

var (
	theRegistry *registryEnv
	registryErr error
	skipReason  string
	moduleRoot  string
	suiteTmp    string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if ci := isCI(); !ci && os.Getenv("KILN_E2E") == "0" {
		skipReason = "KILN_E2E=0: end-to-end tests skipped on request (ignored when CI=true)"
		return m.Run()
	}

	var err error
	suiteTmp, err = os.MkdirTemp("", "kiln-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(suiteTmp)

	moduleRoot, err = findModuleRoot()
	if err != nil {
		registryErr = err
		return m.Run()
	}

	runID := fmt.Sprintf("r%s-%d", time.Now().UTC().Format("20060102t150405"), os.Getpid())

	if addr := os.Getenv("KILN_E2E_REGISTRY"); addr != "" {
		addr = strings.TrimSuffix(strings.TrimPrefix(addr, "http://"), "/")
		theRegistry = &registryEnv{Addr: addr, URL: "http://" + addr, RunID: runID}
		if err := waitForV2(theRegistry.URL, 30*time.Second, nil); err != nil {
			registryErr = fmt.Errorf("KILN_E2E_REGISTRY=%s: %w", addr, err)
			theRegistry = nil
		}
		fmt.Printf("e2e: testing external registry %s (KILN_E2E_REGISTRY)\n", addr)
		return m.Run()
	}

	srv, err := startKiln(runID)
	if err != nil {
		registryErr = err
		code := m.Run()
		if srv != nil {
			srv.printTail(os.Stdout, 80)
		}
		return code
	}
	theRegistry = srv.env
	code := m.Run()
	if stopErr := srv.stop(); stopErr != nil {
		fmt.Printf("e2e: FAIL: %v\n", stopErr)
		code = 1
	}
	if code != 0 {
		srv.printTail(os.Stdout, 80)
	}
	return code
}

func isCI() bool {
	switch strings.ToLower(os.Getenv("CI")) {
	case "true", "1", "yes":
		return true
	}
	return false
}

// needRegistry returns the registry under test, skipping when e2e is
// disabled on request and failing when the registry could not be started.
func needRegistry(t *testing.T) *registryEnv {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if registryErr != nil {
		t.Fatalf("registry under test is not available: %v", registryErr)
	}
	if theRegistry == nil {
		t.Fatal("registry under test is not available")
	}
	return theRegistry
}

func findModuleRoot() (string, error) {
	out, err := exec.Command(goBin(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

func goBin() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// sharedPath finds a file of the project's shared/ tools: $KILN_SHARED_DIR,
// then shared/ beside the module root or beside any of its parents.
func sharedPath(t *testing.T, rel string) string {
	t.Helper()
	var tried []string
	if d := os.Getenv("KILN_SHARED_DIR"); d != "" {
		p := filepath.Join(d, rel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		tried = append(tried, filepath.Join(d, rel))
	}
	for dir := moduleRoot; dir != ""; {
		p := filepath.Join(dir, "..", "shared", rel)
		if _, err := os.Stat(p); err == nil {
			return filepath.Clean(p)
		}
		if p = filepath.Clean(p); !slices.Contains(tried, p) {
			tried = append(tried, p)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	t.Fatalf("shared tool %s not found (looked at %s); it lives in the project's shared/ directory beside the repository, or set KILN_SHARED_DIR", rel, strings.Join(tried, ", "))
	return ""
}

// ---------------------------------------------------------------- kiln

type kilnServer struct {
	env     *registryEnv
	cmd     *exec.Cmd
	stderr  string // path of the captured stderr
	done    chan struct{}
	waitErr error
}

func startKiln(runID string) (*kilnServer, error) {
	bin, err := buildKiln()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(suiteTmp, "data")
	// From an empty directory, so no stray ./config.yml is read.
	return launchKiln(bin, runID, suiteTmp, "kiln.stderr", nil, "", "--data", data)
}

var (
	kilnBinOnce sync.Once
	kilnBin     string
	kilnBinErr  error
)

// buildKiln builds kiln with the race detector, once per suite.
func buildKiln() (string, error) {
	kilnBinOnce.Do(func() {
		bin := filepath.Join(suiteTmp, "kiln")
		fmt.Printf("e2e: building kiln (go build -race ./cmd/kiln)\n")
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		build := exec.CommandContext(ctx, goBin(), "build", "-race", "-o", bin, "./cmd/kiln")
		build.Dir = moduleRoot
		if out, err := build.CombinedOutput(); err != nil {
			kilnBinErr = fmt.Errorf("go build -race ./cmd/kiln: %v\n%s", err, tail(string(out), 40))
			return
		}
		kilnBin = bin
	})
	return kilnBin, kilnBinErr
}

// launchKiln starts `kiln serve --addr ADDR ARGS...` in dir, with env added
// to its environment, and waits until it answers /v2/. An empty addr means
// a free port on 127.0.0.1. Its output goes to dir/logName.
func launchKiln(bin, runID, dir, logName string, env []string, addr string, args ...string) (*kilnServer, error) {
	if addr == "" {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	s := &kilnServer{
		env:    &registryEnv{Addr: addr, URL: "http://" + addr, Kiln: true, RunID: runID},
		stderr: filepath.Join(dir, logName),
		done:   make(chan struct{}),
	}
	errf, err := os.Create(s.stderr)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, append([]string{"serve", "--addr", addr}, args...)...)
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout = errf
	s.cmd.Stderr = errf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		errf.Close()
		return nil, fmt.Errorf("start kiln: %w", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		errf.Close()
		close(s.done)
	}()
	fmt.Printf("e2e: kiln serve --addr %s %s (pid %d)\n", addr, strings.Join(args, " "), s.cmd.Process.Pid)
	if err := waitForV2(s.env.URL, 60*time.Second, s.done); err != nil {
		s.kill()
		return s, fmt.Errorf("kiln did not come up: %w", err)
	}
	return s, nil
}

func (s *kilnServer) kill() {
	select {
	case <-s.done:
	default:
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// stop sends SIGTERM and waits. It reports an error if kiln had already died,
// did not exit within 20s, or the race detector reported a data race.
func (s *kilnServer) stop() error {
	select {
	case <-s.done:
		return fmt.Errorf("kiln exited during the tests: %v", s.waitErr)
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	var errs []error
	select {
	case <-s.done:
		if s.waitErr != nil {
			fmt.Printf("e2e: kiln exited after SIGTERM with: %v\n", s.waitErr)
		}
	case <-time.After(20 * time.Second):
		s.kill()
		errs = append(errs, errors.New("kiln did not exit within 20s of SIGTERM"))
	}
	if b, err := os.ReadFile(s.stderr); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
		errs = append(errs, errors.New("the race detector reported a DATA RACE in kiln (see its stderr)"))
	}
	return errors.Join(errs...)
}

func (s *kilnServer) printTail(w io.Writer, n int) {
	b, err := os.ReadFile(s.stderr)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	fmt.Fprintf(w, "e2e: last %d lines of kiln's stderr:\n", len(lines))
	for _, l := range lines {
		fmt.Fprintf(w, "  | %s\n", l)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitForV2 polls GET /v2/ until it answers 200. done, if not nil, aborts
// the wait when closed (the server exited).
func waitForV2(base string, timeout time.Duration, done <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Get(base + "/v2/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = "GET /v2/ answered " + resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-done:
			return fmt.Errorf("the server exited (last: %s)", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("GET %s/v2/ did not answer 200 within %s (last: %s)", base, timeout, last)
}

// ---------------------------------------------------------------- tools

var (
	aptMu      sync.Mutex
	aptUpdated bool
)

// ensureTool returns the path of bin, installing Debian package pkg with
// apt-get when it is missing (only possible as root; otherwise it fails).
func ensureTool(t *testing.T, bin, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(bin); err == nil {
		return p
	}
	aptInstall(t, pkg, bin)
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s is still missing after apt-get install -y %s", bin, pkg)
	}
	return p
}

// aptInstall installs Debian packages; why names what needs them.
func aptInstall(t *testing.T, pkg, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("%s is needed but missing, and the test cannot install it: not root. Install it with `apt-get install -y %s` (or set KILN_E2E=0 to skip the e2e tests outside CI)", why, pkg)
	}
	aptMu.Lock()
	defer aptMu.Unlock()
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	if !aptUpdated {
		mustRun(t, cmdOpts{Env: env, Timeout: 10 * time.Minute}, "apt-get", "update", "-q")
		aptUpdated = true
	}
	mustRun(t, cmdOpts{Env: env, Timeout: 15 * time.Minute}, "apt-get", "install", "-y", "-q", "--no-install-recommends", pkg)
}

// ---------------------------------------------------------------- commands

type cmdOpts struct {
	Env     []string // added to the environment
	Dir     string
	Stdin   io.Reader
	Timeout time.Duration // default 5 minutes
	Quiet   bool          // do not log stdout (it is still returned)
}

type cmdResult struct {
	Stdout, Stderr string
	Err            error
}

// runCmd runs a command with a timeout, logging the command line and output.
func runCmd(t *testing.T, o cmdOpts, name string, args ...string) cmdResult {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Stdin = o.Stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s: %w", o.Timeout, err)
	}
	t.Logf("$ %s  [%s, %v]", shellQuote(name, args), time.Since(start).Round(time.Millisecond), exitText(err))
	if !o.Quiet {
		logOutput(t, "stdout", stdout.String())
	}
	logOutput(t, "stderr", stderr.String())
	return cmdResult{Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
}

// mustRun is runCmd that fails the test on error; it returns stdout.
func mustRun(t *testing.T, o cmdOpts, name string, args ...string) string {
	t.Helper()
	r := runCmd(t, o, name, args...)
	if r.Err != nil {
		t.Fatalf("%s failed: %v\nstderr:\n%s", shellQuote(name, args), r.Err, tail(r.Stderr, 40))
	}
	return r.Stdout
}

func exitText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func logOutput(t *testing.T, what, s string) {
	t.Helper()
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return
	}
	t.Logf("%s:\n%s", what, tail(s, 60))
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines omitted]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func shellQuote(name string, args []string) string {
	parts := []string{name}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"$\\*?;&|<>()[]{}") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// lastLineWithPrefix returns the last line of s that starts with prefix.
func lastLineWithPrefix(s, prefix string) string {
	var found string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, prefix) {
			found = l
		}
	}
	return found
}

// ---------------------------------------------------------------- HTTP

var httpClient = &http.Client{Timeout: 2 * time.Minute}

// Every manifest media type a registry may hold, for Accept headers.
const acceptManifests = "application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.oci.image.index.v1+json, " +
	"application/vnd.docker.distribution.manifest.v2+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json"

// doHTTP performs a request against the registry under test and returns the
// response (body already read and closed) and the body.
func doHTTP(t *testing.T, method, url string, header http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, b
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// getManifest fetches a manifest by tag or digest; it fails the test unless
// the answer is 200 and the body hashes to the Docker-Content-Digest header.
func getManifest(t *testing.T, reg *registryEnv, repo, ref string) (body []byte, digest, mediaType string) {
	t.Helper()
	url := fmt.Sprintf("%s/v2/%s/manifests/%s", reg.URL, repo, ref)
	resp, b := doHTTP(t, http.MethodGet, url, http.Header{"Accept": {acceptManifests}}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, tail(string(b), 10))
	}
	dcd := resp.Header.Get("Docker-Content-Digest")
	if got := sha256Digest(b); dcd != "" && dcd != got {
		t.Errorf("GET %s: Docker-Content-Digest %s but the body hashes to %s", url, dcd, got)
	}
	if dcd == "" {
		t.Errorf("GET %s: no Docker-Content-Digest header", url)
		dcd = sha256Digest(b)
	}
	if strings.HasPrefix(ref, "sha256:") && sha256Digest(b) != ref {
		t.Errorf("GET %s: body hashes to %s", url, sha256Digest(b))
	}
	return b, dcd, resp.Header.Get("Content-Type")
}

// checkBlob fetches a blob and fails the test unless it is there with the
// expected size and its content hashes to digest.
func checkBlob(t *testing.T, reg *registryEnv, repo, digest string, size int64) {
	t.Helper()
	url := fmt.Sprintf("%s/v2/%s/blobs/%s", reg.URL, repo, digest)
	resp, b := doHTTP(t, http.MethodGet, url, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %s", url, resp.Status)
		return
	}
	if got := sha256Digest(b); got != digest {
		t.Errorf("GET %s: content hashes to %s", url, got)
	}
	if size >= 0 && int64(len(b)) != size {
		t.Errorf("GET %s: %d bytes, descriptor says %d", url, len(b), size)
	}
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != digest {
		t.Errorf("GET %s: Docker-Content-Digest %s", url, h)
	}
}

// manifestDoc covers the fields of image manifests and indexes (OCI and
// Docker schema 2) that the tests look at.
type manifestDoc struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptor       `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Platform     *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform,omitempty"`
}

// checkManifestTree fetches ref from repo and every manifest and blob it
// references (recursively for indexes), verifying each digest and size.
// It returns the digest of ref's manifest.
func checkManifestTree(t *testing.T, reg *registryEnv, repo, ref string) string {
	t.Helper()
	body, digest, ct := getManifest(t, reg, repo, ref)
	var m manifestDoc
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("manifest %s:%s is not JSON: %v", repo, ref, err)
	}
	if m.SchemaVersion != 2 {
		t.Errorf("manifest %s:%s: schemaVersion %d", repo, ref, m.SchemaVersion)
	}
	if m.MediaType != "" && ct != m.MediaType {
		t.Errorf("manifest %s:%s: Content-Type %q but mediaType %q", repo, ref, ct, m.MediaType)
	}
	for _, d := range m.Manifests {
		if got := checkManifestTree(t, reg, repo, d.Digest); got != d.Digest {
			t.Errorf("child manifest %s: registry says %s", d.Digest, got)
		}
	}
	if m.Config != nil {
		checkBlob(t, reg, repo, m.Config.Digest, m.Config.Size)
	}
	for _, l := range m.Layers {
		checkBlob(t, reg, repo, l.Digest, l.Size)
	}
	if len(m.Manifests) == 0 && m.Config == nil {
		t.Errorf("manifest %s:%s has neither manifests nor a config: %s", repo, ref, body)
	}
	return digest
}
