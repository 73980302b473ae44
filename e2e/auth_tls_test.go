package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAuthTLS runs kiln with HTTPS and an htpasswd file made by
// `htpasswd -B`: docker logs in, pushes and pulls over TLS, kiln's docker
// and buildah builders push with its internal login, anonymous pulls work once
// anonymous: pull is on, and no password ever reaches kiln's log.
func TestAuthTLS(t *testing.T) {
	needSetup(t)
	ensureTool(t, "buildah", "buildah")
	htpasswd := ensureTool(t, "htpasswd", "apache2-utils")
	busybox := staticBusybox(t)
	docker := startDockerd(t)
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	const user, password = "alice", "e2e-Secret-pw-7319"
	dir := t.TempDir()
	caPEM := writeServerCert(t, dir)

	// htpasswd reads the password from stdin: not on a command line.
	hash := mustRun(t, cmdOpts{Stdin: strings.NewReader(password), Quiet: true}, htpasswd, "-Bin", user)
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(hash), 0o600); err != nil {
		t.Fatal(err)
	}

	// kiln's address goes into dockerd's certs.d and the Dockerfile
	// before kiln starts, so it is picked first (and again if another
	// process takes the port first).
	var addr string
	writeConfig := func(anonymous string) {
		cfg := fmt.Sprintf(`http:
  addr: %q
  tls:
    certificate: ./server.crt
    key: ./server.key
auth:
  htpasswd: ./htpasswd
  anonymous: %s
storage:
  filesystem:
    root: ./data
builds:
  - name: authtls-app
    context: ./app
    tags: [authtls/app:v1]
    builder: docker
  - name: authtls-buildah
    context: ./app
    tags: [authtls/buildah:v1]
    builder: buildah
`, addr, anonymous)
		if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	var env []string // DOCKER_HOST only: kiln's builder needs no client config
	for _, v := range docker.env {
		if strings.HasPrefix(v, "DOCKER_HOST=") {
			env = append(env, v)
		}
	}

	var srv *kilnServer
	addr = onFreePort(t, func(a string) error {
		addr = a
		// dockerd reads a registry's CA from certs.d when it connects.
		certsd := filepath.Join("/etc/docker/certs.d", addr)
		if err := os.MkdirAll(certsd, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(certsd) })
		if err := os.WriteFile(filepath.Join(certsd, "ca.crt"), caPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		// A docker-built rule on a busybox base: its pull and push go
		// through kiln's internal credential.
		os.MkdirAll(filepath.Join(dir, "app"), 0o755)
		os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte(
			"FROM "+addr+"/authtls/base:1\nRUN [\"/bin/busybox\", \"touch\", \"/built\"]\n"), 0o644)
		writeConfig("none")
		var err error
		srv, err = startConfiguredKiln(t, bin, dir, "kiln-none.log", env, "https", client)
		return err
	})
	base := "https://" + addr

	// Plain HTTP is not served.
	if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS port: %s, want 400", resp.Status)
		}
	}
	get := func(path, u, p string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if u != "" {
			req.SetBasicAuth(u, p)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/v2/", "", ""); code != 401 || !strings.Contains(body, "UNAUTHORIZED") {
		t.Errorf("GET /v2/ without login: %d %s, want 401 UNAUTHORIZED", code, body)
	}
	if code, _ := get("/kiln/v1/builds", "", ""); code != 401 {
		t.Errorf("GET /kiln/v1/builds without login: %d, want 401", code)
	}

	ref := addr + "/authtls/base:1"
	rootfs := filepath.Join(t.TempDir(), "rootfs.tar")
	busyboxRootfsTar(t, busybox, rootfs)
	docker.must(t, "import", rootfs, ref)
	if r := docker.run(t, "push", ref); r.Err == nil || !strings.Contains(r.Stderr, "no basic auth credentials") {
		t.Fatalf("docker push without login: %v %q, want a refusal asking for credentials", r.Err, r.Stderr)
	}
	login := func(pw string) cmdResult {
		return runCmd(t, cmdOpts{Env: docker.env, Stdin: strings.NewReader(pw)}, "docker", "login", "-u", user, "--password-stdin", addr)
	}
	if r := login("not-the-password"); r.Err == nil {
		t.Fatal("docker login with a wrong password succeeded")
	}
	// dockerd falls back to plain HTTP after the 401 (loopback registries
	// are "insecure" to it) and reports that 400; kiln's log shows the 401.
	if b, _ := os.ReadFile(srv.stderr); !strings.Contains(string(b), "login failed") {
		t.Error("kiln did not log the failed docker login")
	}
	if r := login(password); r.Err != nil {
		t.Fatalf("docker login: %v\n%s", r.Err, r.Stderr)
	}
	docker.must(t, "push", ref) // the push also triggers authtls-app

	// The build: the daemon pulls the base from kiln and pushes the result
	// with kiln's internal credential, over HTTPS.
	waitBuild := func(rule string, n int) {
		t.Helper()
		var recs []struct{ ID, Status, Error string }
		waitFor(t, 5*time.Minute, fmt.Sprintf("build %d of %s finishing", n, rule), func() (bool, string) {
			code, body := get("/kiln/v1/builds?rule="+rule, user, password)
			if code != 200 {
				t.Fatalf("GET /kiln/v1/builds with login: %d %s", code, body)
			}
			if err := json.Unmarshal([]byte(body), &recs); err != nil {
				t.Fatal(err)
			}
			return len(recs) >= n && (recs[0].Status == "succeeded" || recs[0].Status == "failed" || recs[0].Status == "unchanged"), fmt.Sprintf("%+v", recs)
		})
		if recs[0].Status != "succeeded" {
			_, log := get("/kiln/v1/builds/"+recs[0].ID+"/log", user, password)
			t.Fatalf("%s under auth and TLS: %+v\n%s", rule, recs[0], tail(log, 60))
		}
	}
	waitBuild("authtls-app", 1)
	waitBuild("authtls-buildah", 1)
	docker.must(t, "rmi", ref)
	docker.must(t, "pull", addr+"/authtls/app:v1")
	out := docker.must(t, "run", "--rm", "--network", "none", addr+"/authtls/app:v1", "/bin/busybox", "ls", "/built")
	if !strings.Contains(out, "/built") {
		t.Errorf("the built image lacks /built: %q", out)
	}
	checkNoSecret(t, srv, user, password)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}

	// anonymous: pull — reads need no login, writes still do.
	writeConfig("pull")
	srv = launchTLSKiln(t, bin, dir, "kiln-pull.log", env, "https", client)
	if code, _ := get("/v2/", "", ""); code != 401 {
		t.Errorf("anonymous ping GET /v2/: %d, want 401 with the token challenge", code)
	}
	if code, body := get("/v2/authtls/app/manifests/v1", "", ""); code != 200 {
		t.Errorf("anonymous manifest GET: %d %s", code, body)
	}
	if code, _ := get("/kiln/v1/builds", "", ""); code != 401 {
		t.Errorf("anonymous GET /kiln/v1/builds: %d, want 401", code)
	}
	if code, _ := get("/v2/", user, "wrong"); code != 401 {
		t.Errorf("wrong password with anonymous pull on: %d, want 401", code)
	}
	req, _ := http.NewRequest("POST", base+"/v2/authtls/app/blobs/uploads/", nil)
	if resp, err := client.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("anonymous upload: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	// docker follows the token challenge: anonymously it pulls, logged in
	// it pushes; kiln's docker builder logs in the same way.
	docker.must(t, "logout", addr)
	docker.must(t, "rmi", addr+"/authtls/app:v1")
	docker.must(t, "pull", addr+"/authtls/app:v1")
	docker.must(t, "tag", addr+"/authtls/app:v1", addr+"/authtls/app:v2")
	if r := docker.run(t, "push", addr+"/authtls/app:v2"); r.Err == nil {
		t.Fatal("anonymous docker push succeeded")
	}
	if r := login(password); r.Err != nil {
		t.Fatalf("docker login with anonymous pull on: %v\n%s", r.Err, r.Stderr)
	}
	docker.must(t, "push", addr+"/authtls/app:v2")
	// Forced: nothing changed, and a plain trigger would end unchanged
	// without logging in to pull and push.
	req, _ = http.NewRequest("POST", base+"/kiln/v1/rules/authtls-app/trigger?force=true", nil)
	req.SetBasicAuth(user, password)
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("trigger: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	waitBuild("authtls-app", 2)
	checkNoSecret(t, srv, user, password)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
}

// checkNoSecret fails if kiln's log holds the password or the Basic
// Authorization value.
func checkNoSecret(t *testing.T, srv *kilnServer, user, password string) {
	t.Helper()
	b, err := os.ReadFile(srv.stderr)
	if err != nil {
		t.Fatal(err)
	}
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	for _, s := range []string{password, basic} {
		if strings.Contains(string(b), s) {
			t.Errorf("kiln's log %s holds a credential", srv.stderr)
		}
	}
	if !strings.Contains(string(b), `"/v2/"`) && !strings.Contains(string(b), "path=/v2/") {
		t.Errorf("kiln's log %s has no access log of /v2/: is it the right file?", srv.stderr)
	}
}

// writeServerCert makes a private CA and a server certificate for
// 127.0.0.1 and localhost signed by it, writes server.crt and server.key
// to dir and returns the CA's PEM.
func writeServerCert(t *testing.T, dir string) []byte {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kiln e2e CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "server.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}

// launchTLSKiln starts `kiln serve --config config.yml` in dir and waits
// until /healthz answers at scheme://ADDR (launchKiln polls plain /v2/,
// which a TLS kiln with authentication refuses); ADDR, the address kiln
// bound (the config's may have port 0), is in the result's env.Addr. It
// fails the test if kiln does not come up.
func launchTLSKiln(t *testing.T, bin, dir, logName string, env []string, scheme string, client *http.Client) *kilnServer {
	t.Helper()
	s, err := startConfiguredKiln(t, bin, dir, logName, env, scheme, client)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startConfiguredKiln is launchTLSKiln returning the error instead, one
// that wraps errPortTaken when kiln could not bind the configured address.
// kiln is killed when the test ends.
func startConfiguredKiln(t *testing.T, bin, dir, logName string, env []string, scheme string, client *http.Client) (*kilnServer, error) {
	t.Helper()
	s := &kilnServer{stderr: filepath.Join(dir, logName), done: make(chan struct{})}
	readyFile := filepath.Join(dir, logName+".addr")
	os.Remove(readyFile) // a previous start's, in a restart test
	errf, err := os.Create(s.stderr)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "serve", "--config", "config.yml", "--ready-file", readyFile)
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout, s.cmd.Stderr = errf, errf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		errf.Close()
		return nil, err
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		errf.Close()
		close(s.done)
	}()
	t.Cleanup(s.kill)
	bound, err := waitForReadyFile(readyFile, 60*time.Second, s.done)
	if err != nil {
		s.kill()
		b, _ := os.ReadFile(s.stderr)
		return nil, portTaken(s.stderr, fmt.Errorf("kiln did not come up: %v\n%s", err, tail(string(b), 40)))
	}
	s.env = &registryEnv{Kiln: true, Addr: bound, URL: scheme + "://" + bound}
	base := s.env.URL
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(s.stderr)
			return nil, portTaken(s.stderr, fmt.Errorf("kiln exited: %v\n%s", s.waitErr, tail(string(b), 40)))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			b, _ := os.ReadFile(s.stderr)
			return nil, fmt.Errorf("kiln did not answer %s/healthz (last error %v)\n%s", base, err, tail(string(b), 40))
		}
	}
}

// TestLoginlessPullsDoNotLockOutLogins: skopeo (containers/image, as
// podman, buildah and CRI-O) answers a Basic challenge with an empty user
// and password when it has no login. Those are no credentials, not failed
// logins: after many of them a correct login from the same address works.
func TestLoginlessPullsDoNotLockOutLogins(t *testing.T) {
	needSetup(t)
	skopeo := ensureTool(t, "skopeo", "skopeo")
	htpasswd := ensureTool(t, "htpasswd", "apache2-utils")
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	const user, password = "alice", "e2e-Loginless-pw-5521"
	dir := t.TempDir()
	hash := mustRun(t, cmdOpts{Stdin: strings.NewReader(password), Quiet: true}, htpasswd, "-Bin", user)
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(hash), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "http:\n  addr: 127.0.0.1:0\nauth:\n  htpasswd: ./htpasswd\n  failed_logins_per_minute: 3\nstorage:\n  filesystem:\n    root: ./data\n"
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := launchTLSKiln(t, bin, dir, "kiln.log", nil, "http", &http.Client{Timeout: 10 * time.Second})
	addr := srv.env.Addr
	authfile := filepath.Join(dir, "auth.json") // empty: skopeo has no login for kiln
	os.WriteFile(authfile, []byte("{}"), 0o600)

	for i := range 6 { // twice the failed logins allowed a minute
		r := runCmd(t, cmdOpts{}, skopeo, "inspect", "--tls-verify=false", "--authfile", authfile, "docker://"+addr+"/loginless/app:1")
		if r.Err == nil || strings.Contains(r.Stderr, "429") || strings.Contains(strings.ToLower(r.Stderr), "too many") {
			t.Fatalf("login-less skopeo inspect %d: %v %q, want an authentication error", i+1, r.Err, r.Stderr)
		}
	}
	if r := runCmd(t, cmdOpts{Stdin: strings.NewReader(password)}, skopeo, "login", "--tls-verify=false", "--authfile", authfile,
		"-u", user, "--password-stdin", addr); r.Err != nil {
		t.Fatalf("skopeo login after login-less pulls: %v\n%s", r.Err, r.Stderr)
	}
	// skopeo waits out a 429's Retry-After and tries again, so a lockout
	// shows in kiln's log rather than in skopeo's exit status.
	if b, _ := os.ReadFile(srv.stderr); strings.Contains(string(b), "login failed") || strings.Contains(string(b), "status=429") {
		t.Errorf("kiln counted login-less requests as failed logins:\n%s", tail(string(b), 20))
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
}
