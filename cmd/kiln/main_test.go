package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kiln/config"
)

func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kiln.yml")
	err := os.WriteFile(file, []byte("http:\n  addr: 127.0.0.1:1001\nstorage:\n  filesystem:\n    root: /file\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name               string
		flags              serveFlags
		envAddr, envData   string
		wantAddr, wantRoot string
	}{
		{"defaults", serveFlags{}, "", "", ":5000", "./data"},
		{"file over defaults", serveFlags{config: file}, "", "", "127.0.0.1:1001", "/file"},
		{"env over file", serveFlags{config: file}, "127.0.0.1:1002", "/env", "127.0.0.1:1002", "/env"},
		{"flags over env", serveFlags{config: file, addr: "127.0.0.1:1003", data: "/flag"}, "127.0.0.1:1002", "/env", "127.0.0.1:1003", "/flag"},
		{"flag replaces a bad env value", serveFlags{addr: "127.0.0.1:1003"}, "not-an-addr", "", "127.0.0.1:1003", "./data"},
		{"one flag, one env", serveFlags{config: file, data: "/flag"}, "127.0.0.1:1002", "", "127.0.0.1:1002", "/flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(config.EnvAddr, tt.envAddr)
			t.Setenv(config.EnvData, tt.envData)
			t.Chdir(t.TempDir()) // no ./config.yml to pick up
			cfg, err := loadConfig(tt.flags)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.HTTP.Addr != tt.wantAddr || cfg.Storage.Filesystem.Root != tt.wantRoot {
				t.Errorf("addr %q root %q, want %q %q", cfg.HTTP.Addr, cfg.Storage.Filesystem.Root, tt.wantAddr, tt.wantRoot)
			}
		})
	}
}

func TestLoadConfigRejectsBadFlag(t *testing.T) {
	t.Setenv(config.EnvAddr, "")
	t.Chdir(t.TempDir())
	_, err := loadConfig(serveFlags{addr: "no-port"})
	if err == nil || !strings.Contains(err.Error(), "http.addr") {
		t.Fatalf("err = %v, want an http.addr error", err)
	}
}

// syncBuffer lets the test read logs the server goroutines write.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // closed and replaced at every write
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written != nil {
		close(b.written)
		b.written = nil
	}
	return b.buf.Write(p)
}

// waitFor blocks until the buffer holds s, or ctx ends (false).
func (b *syncBuffer) waitFor(ctx context.Context, s string) bool {
	return b.waitUntil(ctx, func(text string) bool { return strings.Contains(text, s) })
}

// waitUntil blocks until cond holds for the buffer's text, checked after
// every write, or ctx ends (false).
func (b *syncBuffer) waitUntil(ctx context.Context, cond func(text string) bool) bool {
	for {
		b.mu.Lock()
		if cond(b.buf.String()) {
			b.mu.Unlock()
			return true
		}
		if b.written == nil {
			b.written = make(chan struct{})
		}
		written := b.written
		b.mu.Unlock()
		select {
		case <-written:
		case <-ctx.Done():
			return false
		}
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.ShutdownTimeout = 5 * time.Second
	cfg.Storage.Filesystem.Root = filepath.Join(t.TempDir(), "data")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startServe runs kiln on cfg, logging to logger, until the returned
// stop (also called at the end of the test), which waits for it to end
// and fails t if it ended with an error.
func startServe(t *testing.T, cfg *config.Config, logger *slog.Logger) (addr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- runServe(ctx, cfg, logger, ready) }()
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("runServe: %v", err)
	}
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runServe: %v", err)
		}
	})
	t.Cleanup(stop)
	return addr, stop
}

func TestRunServe(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, cfg, logger, ready) }()

	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("runServe returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server not ready")
	}
	if strings.HasSuffix(addr, ":0") {
		t.Fatalf("ready got %q, want the bound port", addr)
	}

	resp, err := http.Get("http://" + addr + "/v2/?token=secret")
	if err != nil {
		t.Fatalf("GET /v2/: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	t.Logf("GET /v2/ -> %s", resp.Status)

	if fi, err := os.Stat(cfg.Storage.Filesystem.Root); err != nil || !fi.IsDir() {
		t.Errorf("data root not created: %v", err)
	}

	cancel() // what SIGINT/SIGTERM do in main
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runServe after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runServe did not return after cancel")
	}

	out := logs.String()
	for _, want := range []string{
		"msg=\"kiln listening\" addr=" + addr, // the bound port, not :0
		"data=" + cfg.Storage.Filesystem.Root,
		"msg=request method=GET path=/v2/ status=",
		"msg=stopped",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret") {
		t.Errorf("query string logged:\n%s", out)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("still accepting connections after runServe returned")
	}
}

func TestRunServeInMemory(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Storage.Driver = config.DriverInMemory
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, cfg, slog.New(slog.DiscardHandler), ready) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("runServe: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRunServeBusyPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t)
	cfg.HTTP.Addr = ln.Addr().String()
	err = runServe(t.Context(), cfg, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), cfg.HTTP.Addr) || !strings.Contains(err.Error(), "--addr") {
		t.Fatalf("err = %v, want a busy-port error naming the address and --addr", err)
	}
}

func TestServeCommandConfigError(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("storage:\n  driver: gcs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := newRootCmd()
	cmd.SetArgs([]string{"serve", "--config", bad})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.ExecuteContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), "storage.driver") {
		t.Fatalf("err = %v, want a storage.driver error", err)
	}
	if out.Len() != 0 {
		t.Errorf("expected no usage dump, got:\n%s", out.String())
	}
}

func TestVersionCommand(t *testing.T) {
	// Not parallel: it sets the version every serve reads.
	defer func(v string) { version = v }(version)
	for _, tt := range []struct{ set, want string }{
		{"v1.2.3", "kiln v1.2.3\n"},
		{"", "kiln "}, // dev or the stamped module version
	} {
		version = tt.set
		cmd := newRootCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs([]string{"version"})
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out.String(), tt.want) || len(out.String()) <= len("kiln \n") {
			t.Errorf("version %q printed %q, want prefix %q", tt.set, out.String(), tt.want)
		}
	}
}
