package main

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
)

func TestOpsEndpoints(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	var logs syncBuffer
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	addr, stop := startServe(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	defer stop()
	get := func(path string) (int, string, http.Header) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, body, _ := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if code, _, h := get("/v2/nosuch/manifests/v1"); code != 404 || h.Get("X-Request-Id") == "" {
		t.Errorf("manifest GET: %d, X-Request-Id %q", code, h.Get("X-Request-Id"))
	}
	_, metrics, _ := get("/metrics")
	for _, want := range []string{
		`kiln_http_requests_total{method="GET",route="manifest",status="404"} 1`,
		`kiln_uploads_in_flight 0`,
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// A store that no longer answers is not ready.
	if err := os.RemoveAll(cfg.Storage.Filesystem.Root); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Storage.Filesystem.Root, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "store unreachable") {
		t.Errorf("/readyz with a broken store: %d %q", code, body)
	}
}
