package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"kiln/config"
)

// writeSelfSigned writes a certificate for 127.0.0.1 and its key to dir.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kiln test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeAuthTLS runs the whole server with TLS and htpasswd: logins,
// open probes, a push, and no credential in the logs.
func TestServeAuthTLS(t *testing.T) {
	const user, password = "alice", "correct-horse-battery"
	dir := t.TempDir()
	cfg := testConfig(t)
	var pool *x509.CertPool
	cfg.HTTP.TLS.Certificate, cfg.HTTP.TLS.Key, pool = writeSelfSigned(t, dir)
	hash, _ := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	cfg.Auth.Htpasswd = filepath.Join(dir, "htpasswd")
	os.WriteFile(cfg.Auth.Htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600)
	cfg.Auth.Anonymous = config.AnonymousNone
	// A native build: its pulls and pushes to kiln need the internal
	// credential and trust in kiln's certificate.
	cfg.Registry.Hostnames = []string{"kiln.test"}
	bctx := t.TempDir()
	os.WriteFile(filepath.Join(bctx, "Dockerfile"), []byte("FROM kiln.test/base:1\nCOPY f /f\n"), 0o644)
	os.WriteFile(filepath.Join(bctx, "f"), []byte("hi"), 0o644)
	cfg.Builds = []config.Build{{Name: "app", Context: bctx, Dockerfile: "Dockerfile", Tags: []string{"app/built:latest"}, Builder: "native", Strategy: "build", Network: "none"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	addr, stop := startServe(t, cfg, slog.New(slog.NewJSONHandler(&logs, nil)))

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	client := &http.Client{Transport: tr}
	do := func(method, path, u, p string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+addr+path, nil)
		if u != "" {
			req.SetBasicAuth(u, p)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	for _, tc := range []struct {
		method, path, user, pw string
		want                   int
	}{
		{"GET", "/healthz", "", "", 200},
		{"GET", "/readyz", "", "", 200},
		{"GET", "/metrics", "", "", 200},
		{"GET", "/v2/", "", "", 401},
		{"GET", "/v2/", user, "wrong", 401},
		{"GET", "/v2/?token=x", user, password, 200},
		{"GET", "/kiln/v1/builds", "", "", 401},
		{"GET", "/kiln/v1/builds", user, password, 200},
		{"POST", "/kiln/v1/gc?dry_run=1", "", "", 401},
	} {
		resp, body := do(tc.method, tc.path, tc.user, tc.pw)
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s as %q: status %d, want %d (%s)", tc.method, tc.path, tc.user, resp.StatusCode, tc.want, body)
		}
		if tc.want == 401 && (!strings.Contains(body, `"UNAUTHORIZED"`) || resp.Header.Get("WWW-Authenticate") != `Basic realm="kiln"`) {
			t.Errorf("%s %s: 401 without OCI error or challenge: %q %q", tc.method, tc.path, body, resp.Header.Get("WWW-Authenticate"))
		}
	}

	// Plain HTTP gets nothing but net/http's refusal.
	if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP: status %d, want 400", resp.StatusCode)
		}
	}
	// TLS 1.1 is refused.
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get("https://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("a TLS 1.1 client was served")
	}

	// A push with go-containerregistry, as docker would do it.
	ref, err := name.NewTag(addr + "/app/x:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(64, 1)
	if err := remote.Write(ref, img, remote.WithTransport(tr), remote.WithAuth(&authn.Basic{Username: user, Password: password})); err != nil {
		t.Fatalf("push over HTTPS with login: %v", err)
	}
	if err := remote.Write(ref, img, remote.WithTransport(tr)); err == nil {
		t.Fatal("anonymous push accepted")
	}

	// Pushing the base runs the build, which pushes to kiln itself.
	login := remote.WithAuth(&authn.Basic{Username: user, Password: password})
	base, _ := name.NewTag(addr + "/base:1")
	if err := remote.Write(base, img, remote.WithTransport(tr), login); err != nil {
		t.Fatal(err)
	}
	// The build logs its end after its record is final.
	buildCtx, cancelBuild := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancelBuild()
	ended := logs.waitUntil(buildCtx, func(text string) bool {
		for _, l := range strings.Split(text, "\n") {
			if strings.Contains(l, `"rule":"app"`) && (strings.Contains(l, `"msg":"build succeeded"`) || strings.Contains(l, `"msg":"build failed"`)) {
				return true
			}
		}
		return false
	})
	var recs []struct{ Status, Error string }
	req, _ := http.NewRequest("GET", "https://"+addr+"/kiln/v1/builds?rule=app", nil)
	req.SetBasicAuth(user, password)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&recs)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !ended || len(recs) == 0 {
		t.Fatalf("build not done within 2 minutes: %+v", recs)
	}
	if recs[0].Status != "succeeded" {
		t.Fatalf("build under auth and TLS: %+v", recs[0])
	}
	built, _ := name.NewTag(addr + "/app/built:latest")
	if _, err := remote.Head(built, remote.WithTransport(tr), login); err != nil {
		t.Fatalf("built image: %v", err)
	}

	// The builds CLI logs in from the environment and trusts $KILN_CA_CERT.
	t.Setenv("KILN_CA_CERT", cfg.HTTP.TLS.Certificate)
	t.Setenv("KILN_PASSWORD", password)
	cmd := newBuildsCmd()
	cmd.SetArgs([]string{"ls", "--server", "https://" + addr, "--username", user})
	cmd.SetOut(io.Discard)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("kiln builds ls with login: %v", err)
	}
	t.Setenv("KILN_PASSWORD", "wrong")
	cmd = newBuildsCmd()
	cmd.SetArgs([]string{"ls", "--server", "https://" + addr, "--username", user})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("kiln builds ls with a wrong password: %v, want a 401", err)
	}

	stop() // the log is complete once runServe returns
	out := logs.String()
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	for _, secret := range []string{password, basic, "token=x"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, `"path":"/v2/"`) || !strings.Contains(out, "login failed") {
		t.Errorf("log lacks the requests or the failed login:\n%s", out)
	}
}

// TestServeBadTLSFiles: a bad key or certificate stops startup naming it.
func TestServeBadTLSFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, _ := writeSelfSigned(t, dir)
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not pem"), 0o600)
	for _, tc := range []struct{ cert, key, want string }{
		{filepath.Join(dir, "missing.pem"), keyFile, "http.tls.certificate"},
		{certFile, filepath.Join(dir, "missing.pem"), "http.tls.key"},
		{certFile, garbage, "http.tls.key " + garbage},
	} {
		cfg := testConfig(t)
		cfg.HTTP.TLS.Certificate, cfg.HTTP.TLS.Key = tc.cert, tc.key
		err := runServe(t.Context(), cfg, slog.New(slog.DiscardHandler), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cert %s key %s: err %v, want one naming %s", tc.cert, tc.key, err, tc.want)
		}
	}
}
