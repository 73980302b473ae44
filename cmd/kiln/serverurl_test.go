package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"kiln/config"
)

// TestServerResolution: the API commands find kiln as healthcheck does,
// from ./config.yml (or --config), unless $KILN_SERVER or, above it,
// --server names it.
func TestServerResolution(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv(envServer, "")
	t.Setenv(config.EnvAddr, "")
	write := func(name, yml string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	resolve := func(f serverFlags) string {
		t.Helper()
		u, err := f.url()
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		return u
	}

	if got, want := resolve(serverFlags{}), "http://127.0.0.1:5000"; got != want {
		t.Errorf("no config: %q, want the default %q", got, want)
	}
	write("config.yml", "http:\n  addr: \"127.0.0.1:5600\"\n")
	if got, want := resolve(serverFlags{}), "http://127.0.0.1:5600"; got != want {
		t.Errorf("./config.yml with addr 127.0.0.1:5600: %q, want %q", got, want)
	}
	write("tls.yml", "http:\n  addr: \":5700\"\n  tls:\n    certificate: c.pem\n    key: k.pem\n")
	if got, want := resolve(serverFlags{config: "tls.yml"}), "https://127.0.0.1:5700"; got != want {
		t.Errorf("--config tls.yml: %q, want %q", got, want)
	}
	t.Setenv(envServer, "http://from-env:1")
	if got, want := resolve(serverFlags{}), "http://from-env:1"; got != want {
		t.Errorf("$%s set: %q, want it over the config: %q", envServer, got, want)
	}
	if got, want := resolve(serverFlags{server: "http://from-flag:2"}), "http://from-flag:2"; got != want {
		t.Errorf("--server and $%s set: %q, want the flag %q", envServer, got, want)
	}
	write("config.yml", "http:\n  addr: \"no-port\"\n")
	if got, want := resolve(serverFlags{}), "http://from-env:1"; got != want {
		t.Errorf("$%s set and a broken config: %q, want %q (the config is not read)", envServer, got, want)
	}
	t.Setenv(envServer, "")
	if _, err := (serverFlags{}).url(); err == nil {
		t.Error("a config whose http.addr has no port resolved to a server")
	}
}

// TestBuildsFindsServerInConfig: run where ./config.yml names kiln's
// address, `kiln builds ls` asks that kiln, not the default port.
func TestBuildsFindsServerInConfig(t *testing.T) {
	var asked atomic.Int32 // the server's goroutines write it
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/kiln/v1/builds" {
			asked.Add(1)
			w.Write([]byte("[]"))
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	t.Chdir(t.TempDir())
	t.Setenv(envServer, "")
	t.Setenv(config.EnvAddr, "")
	cfg := "http:\n  addr: \"" + srv.Listener.Addr().String() + "\"\n"
	if err := os.WriteFile("config.yml", []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"builds", "ls"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("kiln builds ls with ./config.yml naming %s: %v", srv.Listener.Addr(), err)
	}
	if asked.Load() != 1 || !strings.HasPrefix(out.String(), "ID") {
		t.Errorf("the config's server was asked %d times, output %q; want once, and a table", asked.Load(), out.String())
	}
}
