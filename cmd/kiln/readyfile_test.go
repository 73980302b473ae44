package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteReadyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "addr")
	if err := writeReadyFile(path, "127.0.0.1:4321"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "127.0.0.1:4321\n" {
		t.Fatalf("ready file = %q, %v; want the address and a newline", b, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".ready-*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// A ready file that cannot be written stops the server rather than leaving
// its caller waiting for the file.
func TestServeReportingUnwritableFileStops(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	path := filepath.Join(t.TempDir(), "missing", "addr")
	done := make(chan error, 1)
	go func() { done <- serveReporting(t.Context(), cfg, slog.New(slog.DiscardHandler), path) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "ready file") {
			t.Fatalf("err = %v, want a ready-file error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serveReporting kept serving without its ready file")
	}
}
